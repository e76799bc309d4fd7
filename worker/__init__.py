"""worker: a scheduled scraping and alerting daemon for news listings."""

from __future__ import annotations

__version__ = "0.1.0"
DISTRIBUTION = (
    "news-listing-worker"  # the distribution (pyproject's [project] name) this package ships in
)


def _homepage() -> str | None:
    """The project's URL, `[project.urls] Homepage` in pyproject.toml: a site owner who sees our
    requests in their logs can find out who we are and how to reach us.

    Read from the installed distribution's metadata when this package is the one installed
    (its .dist-info beside the package: another distribution may be named the same, or be
    installed elsewhere); from the pyproject.toml beside the package when run from a source
    tree (PYTHONPATH, an editable install); else None.
    """
    from pathlib import Path

    here = Path(__file__).resolve()
    # installed: the distribution's .dist-info beside the package (what importlib.metadata
    # would find for it, read here without importing importlib.metadata: 40 ms at each start)
    for info in sorted(here.parent.parent.glob(f"{DISTRIBUTION.replace('-', '_')}-*.dist-info")):
        try:
            text = (info / "METADATA").read_text(encoding="utf-8")
        except (OSError, ValueError):
            continue
        for line in text.split("\n\n", 1)[0].splitlines():  # the headers
            name, _, value = line.partition(":")
            label, _, url = value.partition(",")
            if name.strip().lower() == "project-url" and label.strip().lower() == "homepage":
                if url.strip():
                    return url.strip()
    pyproject = here.parent.parent / "pyproject.toml"
    try:
        import tomllib

        with open(pyproject, "rb") as file:
            project = tomllib.load(file).get("project", {})
        url = project.get("urls", {}).get("Homepage")
        return url if isinstance(url, str) and url else None
    except (OSError, ValueError):
        return None


HOMEPAGE = _homepage()
USER_AGENT = f"worker/{__version__} (news listing monitor" + (
    f"; +{HOMEPAGE})" if HOMEPAGE else ")"
)
