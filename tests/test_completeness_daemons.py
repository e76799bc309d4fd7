"""Two `worker run` daemons on one PostgreSQL, over the same source: one is cut off mid-listing
while the other's pass runs; between them they miss nothing and alert each article once.

Two passes of one source at once is what a fleet prevents (test_fleet.py), so these daemons
schedule alone (`[fleet] enabled = false`): the resume mark must still hold when passes overlap
(a `worker once` beside a daemon, or such daemons)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.servers import WebhookServer
from tests.test_daemon import ALERT, STARTUP, Worker, titles, wait_until, workers
from worker.site import SELECT_TOML, NewsSite

__all__ = ["workers"]  # the fixture, shared with test_daemon


def daemon_config(path: Path, db_url: str, url: str, hook: str, *, counter: bool) -> Path:
    select = (
        SELECT_TOML if counter else SELECT_TOML.replace('results = ".search-results-count"\n', "")
    )
    path.write_text(
        f'database = "{db_url}"\n\n[http]\nmin_delay = 0\ntimeout = 30\nretries = 0\n\n'
        f'[alerts]\nretry_base = "1s"\n\n[fleet]\nenabled = false\n\n'
        f"[channels]\nhook = {json.dumps(hook)}\n\n"
        f'[[sources]]\nname = "news"\nurl = "{url}"\nevery = "1s"\n{select}\n'
        '[[watchlists]]\nname = "zebra"\nkeywords = ["zebrafish"]\nchannels = ["hook"]\n'
    )
    return path


@pytest.mark.parametrize("counter", [False, True], ids=["no counter", "counter"])
def test_two_daemons_on_postgresql_one_cut_off_mid_listing_miss_nothing(
    tmp_path: Path,
    pg_url: str,
    make_site: Callable[..., NewsSite],
    webhook_server: WebhookServer,
    workers: Callable[..., Worker],
    counter: bool,
) -> None:
    """8 new articles span pages 1-2. Daemon A stores page 1 while daemon B's pass has begun,
    B then finds page 1 already stored and stops ("nothing new"), and A is cut off on page 2.
    B's quiet pass must not clear the resume mark of A's pass: a later pass resumes A's and stores
    the 2 articles of page 2. (A and B ask for the same search in different letter cases, so the
    site can tell their requests apart; "no counter": the mark is all that saves them.)"""
    site = make_site(30, per_page=6)
    hook = webhook_server.url()
    a_url = site.search_url.replace("kyrgyzstan", "KYRGYZSTAN")
    a = workers(
        daemon_config(tmp_path / "a.toml", pg_url, a_url, hook, counter=counter), "run", name="a"
    )
    b = workers(
        daemon_config(tmp_path / "b.toml", pg_url, site.search_url, hook, counter=counter),
        "run",
        name="b",
    )
    a.expect(lambda: a.passes(ok=True) >= 1, STARTUP, "A's first pass")
    b.expect(lambda: b.passes(ok=True) >= 1, STARTUP, "B's first pass")

    b_began, a_stored = threading.Event(), threading.Event()
    b_passes = b.passes()

    def a_page_1(_: str) -> None:  # A reads page 1 only once B's pass has begun
        b_began.wait(30)

    def b_page_1(_: str) -> None:  # B reads page 1 only once A has stored it
        b_began.set()
        a_stored.wait(30)

    def a_page_2(_: str) -> None:  # A's page 2 fails only once B's pass has ended
        a_stored.set()
        wait_until(lambda: b.passes() > b_passes, 30)

    site.on_request(a_page_1, paths="s=KYRGYZSTAN", page=1)
    site.on_request(b_page_1, paths="s=kyrgyzstan", page=1)
    site.on_request(a_page_2, paths="s=KYRGYZSTAN", page=2)
    site.fail(500, paths="/page/2/?s=KYRGYZSTAN", count=1)
    names = [f"Zebrafish Story {n}" for n in range(1, 9)]
    for name in names:
        site.publish(name, "zebrafish")

    a.expect(lambda: a.passes(ok=False) >= 1, ALERT, "A cut off on page 2")
    expected = sorted(f"[zebra] {n}" for n in names)
    a.expect(lambda: len(webhook_server.received) >= 8, ALERT, "the 8 alerts")
    a.wait_passes(2)
    b.wait_passes(2)
    assert sorted(titles(webhook_server)) == expected  # each once
    for worker in (a, b):
        code, _ = worker.stop()
        assert code == 0 and "Traceback" not in worker.err()
