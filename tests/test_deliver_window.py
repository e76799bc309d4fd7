"""Delivery throughput (issue #15, item 5): SMTP sessions kept across the messages of a round,
a few sends in flight per channel (bounded, in order per article), sent alerts recorded in
batches without a crash doubling more than one batch."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.test_notify import NOW, FakeQueue, make_delivery
from tests.test_store import Planner, items
from worker.config import AlertsConfig
from worker.notify import Message, Notifier, SendResult, deliver_due, render
from worker.notify.deliver import MARK_BATCH, SEND_WINDOW
from worker.store import Store, StoreError


def _subject_has(text: str, reply: str):
    return lambda message: reply if text in str(message["subject"]) else None


# --- SMTP sessions ---------------------------------------------------------------------------


async def test_one_smtp_session_serves_several_messages_of_a_round(smtp_server) -> None:
    notifier = Notifier({"mail": [smtp_server.url()]}, timeout=10)
    queue = FakeQueue(
        [
            make_delivery(i, channel="mail", title=f"Story {i}", url=f"https://x.org/{i}")
            for i in range(1, 13)
        ]
    )
    try:
        report = await deliver_due(
            queue, notifier, AlertsConfig(send_timeout=10), owner="w", now=NOW
        )
    finally:
        notifier.close()
    assert report.sent == 12 and smtp_server.wait_for(12)
    assert sorted(str(m["subject"]) for m in smtp_server.messages) == sorted(
        f"[rail] Story {i}" for i in range(1, 13)
    )
    sessions = set(smtp_server.peers)
    # one session per send in flight at most (SEND_WINDOW), each serving several messages
    assert 1 <= len(sessions) <= SEND_WINDOW < 12


async def test_sequential_emails_share_one_session_and_a_refusal_keeps_it(smtp_server) -> None:
    """The server refuses one message (554 at DATA): that send fails with the server's reply
    as its error; the session goes on serving the next message."""
    smtp_server.refuse = _subject_has("Story 2", "554 5.7.1 Message refused by policy")
    notifier = Notifier({"mail": [smtp_server.url()]}, timeout=10)
    try:
        results = [
            await notifier.send("mail", render(make_delivery(i, title=f"Story {i}")))
            for i in (1, 2, 3)
        ]
    finally:
        notifier.close()
    assert [r.ok for r in results] == [True, False, True]
    assert "554 5.7.1 Message refused by policy" in (results[1].error or "")
    assert smtp_server.wait_for(2) and len(set(smtp_server.peers)) == 1


async def test_a_kept_session_the_server_closes_after_n_messages_is_replaced(smtp_server) -> None:
    """A server that takes 3 messages a session and answers the 4th MAIL FROM with 421: that
    message goes out on a new session (nothing was sent on the old one), none fails."""
    smtp_server.max_per_session = 3
    notifier = Notifier({"mail": [smtp_server.url()]}, timeout=10)
    try:
        for i in range(8):
            result = await notifier.send("mail", render(make_delivery(i, title=f"Story {i}")))
            assert result.ok, result.error
    finally:
        notifier.close()
    assert smtp_server.wait_for(8)
    assert len(set(smtp_server.peers)) == 3  # 3 + 3 + 2


async def test_a_message_the_smtp_server_refuses_is_retried_while_the_others_are_marked_sent(
    smtp_server,
) -> None:
    smtp_server.refuse = _subject_has("Story 3", "550 5.7.1 Content rejected")
    notifier = Notifier({"mail": [smtp_server.url()]}, timeout=10)
    queue = FakeQueue(
        [
            make_delivery(i, channel="mail", title=f"Story {i}", url=f"https://x.org/{i}")
            for i in range(1, 6)
        ]
    )
    alerts = AlertsConfig(send_timeout=10)
    try:
        # the probe (1), then 2-5 in flight together: 3 is refused, the others go out
        report = await deliver_due(queue, notifier, alerts, owner="w", now=NOW)
        assert (report.sent, report.retrying) == (4, 1)
        assert [queue.rows[i].status for i in range(1, 6)] == ["sent"] * 2 + ["pending"] + [
            "sent"
        ] * 2
        refused = queue.rows[3]
        assert refused.attempts == 1 and "550 5.7.1 Content rejected" in (refused.last_error or "")
        assert refused.next_attempt_at == NOW + timedelta(seconds=alerts.retry_base)
        smtp_server.refuse = None
        report = await deliver_due(queue, notifier, alerts, owner="w", now=NOW + timedelta(hours=1))
    finally:
        notifier.close()
    assert report.sent == 1 and queue.rows[3].status == "sent"
    assert smtp_server.wait_for(5)
    assert sorted(str(m["subject"]) for m in smtp_server.messages) == [
        f"[rail] Story {i}" for i in range(1, 6)
    ]
    assert len(set(smtp_server.peers)) <= SEND_WINDOW


# --- sends in flight -------------------------------------------------------------------------


async def test_sends_in_flight_per_channel_are_bounded(webhook_server) -> None:
    webhook_server.hang(0.4)
    notifier = Notifier({"chat": [webhook_server.url()]}, timeout=10)
    queue = FakeQueue([make_delivery(i, url=f"https://x.org/{i}") for i in range(1, 14)])
    try:
        report = await deliver_due(
            queue, notifier, AlertsConfig(send_timeout=10), owner="w", now=NOW
        )
    finally:
        notifier.close()
    assert report.sent == 13 and len(webhook_server.received) == 13
    # the probe alone, then a window of SEND_WINDOW at a time (never more)
    assert SEND_WINDOW - 1 <= webhook_server.max_at_once <= SEND_WINDOW == 4


class _Recording:
    """A Notifier's stand-in that records when each send starts and ends (by delivery id)."""

    timeout = 5.0

    def __init__(self, ids_by_message: dict[str, int], pause: float = 0.05) -> None:
        self.channels = ("chat",)
        self.ids = ids_by_message
        self.pause = pause
        self.events: list[tuple[str, int]] = []
        self.at_once = self.max_at_once = 0

    async def send(
        self, channel: str, message: Message, *, skip: Collection[int] = ()
    ) -> SendResult:
        delivery_id = self.ids[message.message_id]
        self.events.append(("start", delivery_id))
        self.at_once += 1
        self.max_at_once = max(self.max_at_once, self.at_once)
        await asyncio.sleep(self.pause)
        self.at_once -= 1
        self.events.append(("end", delivery_id))
        return SendResult(True, (0,), None)


async def test_the_alerts_of_one_article_go_one_after_another_in_order() -> None:
    # two watchlists match each article: two deliveries per article on one channel
    deliveries = []
    for n in range(6):
        for w in ("rail", "roads"):
            d = make_delivery(len(deliveries) + 1, url=f"https://x.org/{n}", title=f"Story {n}")
            deliveries.append(replace(d, watchlist=w))
    notifier = _Recording({render(d).message_id: d.id for d in deliveries})
    queue = FakeQueue(deliveries)
    report = await deliver_due(queue, notifier, AlertsConfig(), owner="w", now=NOW)  # type: ignore[arg-type]
    assert report.sent == 12 and notifier.max_at_once > 1  # other articles overlapped
    position = {event: i for i, event in enumerate(notifier.events)}
    for first, second in zip(deliveries[::2], deliveries[1::2], strict=True):
        assert position[("end", first.id)] < position[("start", second.id)]
    starts = [i for what, i in notifier.events if what == "start"]
    assert starts == sorted(starts)  # started in id order


# --- recording in batches, and what a crash can double -------------------------------------


class _CountingStore(Store):
    """A Store that counts the sends recorded as committed."""

    committed = 0
    transactions = 0

    def mark_sent_many(self, sent: Sequence[tuple[int, datetime]]) -> None:
        super().mark_sent_many(sent)
        self.committed += len(sent)
        self.transactions += 1


class _Watching:
    """Wraps a Notifier: at every send start and end, how many sends were started and are not
    recorded in the database yet: what a kill at that moment would send again."""

    def __init__(self, notifier: Notifier, store: _CountingStore) -> None:
        self._notifier, self._store = notifier, store
        self.channels, self.timeout = notifier.channels, notifier.timeout
        self.started = 0
        self.exposed: list[int] = []

    async def send(
        self, channel: str, message: Message, *, skip: Collection[int] = ()
    ) -> SendResult:
        self.started += 1
        self.exposed.append(self.started - self._store.committed)
        result = await self._notifier.send(channel, message, skip=skip)
        self.exposed.append(self.started - self._store.committed)
        return result


async def test_a_crash_at_any_moment_of_a_round_doubles_at_most_one_batch(
    sqlite_url: str, webhook_server
) -> None:
    store = _CountingStore(sqlite_url)
    store.migrate()
    store.store_page(
        "src", items(*(f"a{i:03d}" for i in range(60))), Planner({"w": ("chat",)}), silent=False
    )
    notifier = Notifier({"chat": [webhook_server.url()]}, timeout=10)
    watching = _Watching(notifier, store)
    try:
        report = await deliver_due(store, watching, AlertsConfig(send_timeout=10), owner="w")  # type: ignore[arg-type]
    finally:
        notifier.close()
        store.close()
    assert report.sent == 60 and store.committed == 60 and len(webhook_server.received) == 60
    # sent or in flight and not yet recorded: never more than one batch
    assert max(watching.exposed) <= MARK_BATCH == 8
    assert store.transactions < 60  # several sends recorded per transaction


def test_a_batch_of_sent_alerts_is_recorded_whole_or_not_at_all(db_url: str) -> None:
    store = Store(db_url)
    store.migrate()
    store.store_page("src", items("a", "b", "c"), Planner({"w": ("chat",)}), silent=False, now=NOW)
    a, b, c = store.claim_due(owner="w", now=NOW, lease=60, limit=10)
    t1, t2 = NOW + timedelta(seconds=1), NOW + timedelta(seconds=2)
    with pytest.raises(StoreError, match="no delivery with id 999999"):
        store.mark_sent_many([(a.id, t1), (999_999, t1)])
    # rolled back: `a` is still pending and claimed (its send will be retried after the lease)
    assert [
        d.id for d in store.claim_due(owner="x", now=NOW + timedelta(hours=1), lease=60, limit=10)
    ] == [
        a.id,
        b.id,
        c.id,
    ]
    store.mark_sent_many([(a.id, t1), (b.id, t2)])
    store.mark_sent_many([(a.id, t2)])  # a second ack changes nothing
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        query = sa.text("SELECT id, status, attempts, sent_at FROM deliveries")
        rows = {row.id: row for row in conn.execute(query)}
    engine.dispose()
    assert [rows[i].status for i in (a.id, b.id, c.id)] == ["sent", "sent", "pending"]
    assert rows[a.id].attempts == 1 and str(rows[a.id].sent_at).startswith("2025-07-03 12:00:01")
    assert str(rows[b.id].sent_at).startswith("2025-07-03 12:00:02")
    store.close()


# --- generic webhooks sent directly, over kept connections ---------------------------------


async def test_a_json_webhook_gets_the_same_request_as_apprise_sends_it(webhook_server) -> None:
    """json:// goes out through the plugin called directly and a keep-alive client of ours:
    the body (payload extras too), auth and query are those apprise itself sends."""
    import apprise

    url = webhook_server.url("/hook").replace("json://", "json://bob:s3cret@") + (
        "?:source=worker&-key=v1&+X-Token=abc"
    )
    message = render(make_delivery(title="Rail <b>way</b> & co"))
    notifier = Notifier({"chat": [url]}, timeout=10)
    try:
        assert (await notifier.send("chat", message)).ok
    finally:
        notifier.close()
    plain = apprise.Apprise()
    assert plain.add(url)
    assert plain.notify(body=message.chat_text, title=message.chat_title)
    assert webhook_server.wait_for(2)
    ours, theirs = webhook_server.received
    assert ours == theirs and ours["title"] == "[rail] Rail <b>way</b> & co"
    assert ours["source"] == "worker"
    ours_request, theirs_request = webhook_server.requests
    assert ours_request == theirs_request == ("/hook", 200)


async def test_a_refused_json_post_reports_the_status_as_apprise_words_it(webhook_server) -> None:
    webhook_server.fail_with(429)
    notifier = Notifier({"chat": [webhook_server.url()]}, timeout=10)
    try:
        result = await notifier.send("chat", render(make_delivery()))
    finally:
        notifier.close()
    assert not result.ok and "error=429" in (result.error or "")  # what a rate limit looks for


async def test_json_posts_reuse_their_connection_when_the_server_keeps_it_open() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    peers: list[object] = []

    class KeepAlive(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            peers.append(self.client_address)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAlive)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    notifier = Notifier({"chat": [f"json://127.0.0.1:{server.server_address[1]}/h"]}, timeout=10)
    try:
        for i in range(6):
            assert (await notifier.send("chat", render(make_delivery(i)))).ok
    finally:
        notifier.close()
        server.shutdown()
        server.server_close()
    assert len(peers) == 6 and len(set(peers)) == 1  # one connection, six requests
