"""Helpers for end-to-end tests: a config file for the local site, and `worker` run in-process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from worker.cli import main
from worker.site import SELECT_TOML, NewsSite

SELECT = SELECT_TOML  # the local site's selectors


def source_toml(
    site: NewsSite,
    name: str = "local",
    *,
    page_url: bool = False,
    extra: str = "",
    select: str = SELECT,
) -> str:
    text = f'[[sources]]\nname = "{name}"\nurl = "{site.search_url}"\nevery = "1m"\n{extra}\n'
    if page_url:
        text += f'page_url = "{site.page_url_template}"\n'
    return text + select


def write_config(
    path: Path,
    db_url: str,
    *,
    sources: str,
    channels: dict[str, str],
    watchlists: str | None = None,
    alerts: str = 'retry_base = "1s"\nretry_max = "2s"\nmax_attempts = 5',
) -> Path:
    chans = "\n".join(f'{name} = "{url}"' for name, url in channels.items())
    names = ", ".join(f'"{n}"' for n in channels)
    if watchlists is None:
        watchlists = (
            '[[watchlists]]\nname = "rail"\n'
            'keywords = ["railway", "rail*", "\\"Belt and Road\\""]\n'
            f'exclude = ["opinion"]\nchannels = [{names}]\n'
        )
    path.write_text(
        f'database = "{db_url}"\n\n[http]\nmin_delay = 0\ntimeout = 10\nretries = 1\n\n'
        f"[alerts]\n{alerts}\n\n[channels]\n{chans}\n\n{sources}\n{watchlists}",
        encoding="utf-8",
    )
    return path


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_worker(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> Run:
    """Run the `worker` command in this process, as `worker --config CONFIG ARGS...`."""
    capsys.readouterr()
    code = main(["--config", str(config), *args])
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)
