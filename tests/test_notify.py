"""The notify stage: URL checks, escaping, apprise sends to a real SMTP server and a local webhook,
the delivery loop with retries/backoff, channel isolation, console output, secret masking."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from apprise.common import NotifyFormat
from apprise.conversion.format import convert_between

from worker import notify
from worker.config import AlertsConfig
from worker.models import Delivery
from worker.notify import Message, Notifier, SendResult, backoff, check_url, deliver_due, render

NOW = datetime(2025, 7, 3, 12, 0, tzinfo=UTC)
HOSTILE_TITLES = [
    "<script>alert(1)</script>",
    "[click](javascript:alert(1))",
    "**bold** _x_",
    "&amp; entities",
    "x" * 10_000,
]


def make_delivery(
    id: int = 1,
    *,
    channel: str = "chat",
    title: str = "Railway to Bishkek opens",
    url: str = "https://news.example.org/2025/07/railway-opens/",
    summary: str = "The new line links the capital to the south.",
    attempts: int = 0,
    done_targets: tuple[int, ...] = (),
    published: datetime | None = NOW,
) -> Delivery:
    return Delivery(
        id=id,
        watchlist="rail",
        channel=channel,
        attempts=attempts,
        article_url=url,
        title=title,
        summary=summary,
        published=published,
        source="timesca-search",
        keywords=("railway", "rail*"),
        done_targets=done_targets,
    )


def md_to_html(markdown: str) -> str:
    """What a Markdown chat service makes of our Markdown (apprise's CommonMark converter)."""
    return convert_between(NotifyFormat.MARKDOWN, NotifyFormat.HTML, markdown)


# --- check_url ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "mailtos://user:hunter2pass@smtp.example.org?to=desk@example.org",
        "tgram://123456789:ABCdefGHIjklMNOpqrSTUvwxYZ/12345",
        "json://127.0.0.1:8080/hook",
        "console://",
    ],
)
def test_check_url_accepts(url: str) -> None:
    assert check_url(url) is None


@pytest.mark.parametrize(
    ("url", "secret", "expected"),
    [
        ("bogus://user:hunter2pass@host", "hunter2pass", "bogus://... (unknown scheme)"),
        ("tgram://badtokensecret/", "badtokensecret", "tgram://... (incomplete or malformed"),
        ("mailto://user:hunter2pass@", "hunter2pass", "mailto://..."),
        ("user:hunter2pass@nowhere", "hunter2pass", "no scheme://"),
        ("", "", "empty"),
        ("json://127.0.0.1/a, json://127.0.0.1/b", "", "2 URLs in one string"),
    ],
)
def test_check_url_refuses_without_leaking(
    url: str, secret: str, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    error = check_url(url)
    assert error is not None
    assert expected in error
    assert "\n" not in error
    if secret:
        assert secret not in error
        assert secret not in caplog.text  # apprise logs refused URLs whole: muted


def test_notifier_refuses_bad_url_naming_the_channel() -> None:
    with pytest.raises(ValueError, match=r"channel 'desk-chat', URL \[1\]") as info:
        Notifier({"desk-chat": ["console://", "tgram://badtokensecret/"]})
    assert "badtokensecret" not in str(info.value)


# --- render ------------------------------------------------------------------------------------


def test_render_plain_article() -> None:
    message = render(make_delivery())
    assert message.title == "[rail] Railway to Bishkek opens"
    assert "<https://news.example.org/2025/07/railway-opens/>" in message.markdown
    assert "2025\\-07\\-03" in message.markdown
    assert 'href="https://news.example.org/2025/07/railway-opens/"' in message.html
    for body in (message.text, md_to_html(message.markdown), message.html):
        assert "timesca-search" in body
        assert "2025-07-03" in body
        assert "railway, rail*" in body
        assert "The new line links the capital to the south." in body
    assert "Published: unknown" in render(make_delivery(published=None)).text


@pytest.mark.parametrize("title", HOSTILE_TITLES, ids=lambda t: t[:20])
def test_render_escapes_hostile_titles(title: str) -> None:
    message = render(make_delivery(title=title, summary=f"Summary: {title}"))
    md_html = md_to_html(message.markdown)
    for html in (message.html, md_html):
        assert "<script" not in html
        assert "javascript:" not in "".join(re.findall(r'href="[^"]*"', html))
        assert "<em>" not in html
        assert html.count("<strong>") == 1  # ours, around the title
    assert "](javascript:" not in message.markdown
    assert "<script>" not in message.markdown
    assert len(message.title) < 300 and "\n" not in message.title
    assert len(message.markdown) < 2000 and len(message.html) < 3000


def test_render_escape_details() -> None:
    message = render(make_delivery(title="<script>alert(1)</script>"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message.html
    assert "\\<script\\>alert\\(1\\)\\</script\\>" in message.markdown
    assert message.title == "[rail] <script>alert(1)</script>"  # plain text, for subjects

    message = render(make_delivery(title="**bold** _x_"))
    assert "\\*\\*bold\\*\\* \\_x\\_" in message.markdown
    assert "**bold** _x_" in md_to_html(message.markdown)

    message = render(make_delivery(title="&amp; entities"))
    assert "&amp;amp; entities" in message.html
    assert "\\&amp; entities" in message.markdown

    message = render(make_delivery(title="[click](javascript:alert(1))"))
    assert "\\[click\\]\u200b\\(javascript:alert\\(1\\)\\)" in message.markdown


def test_render_caps_sizes_on_word_boundaries() -> None:
    message = render(make_delivery(title="x" * 10_000))
    assert message.title.startswith("[rail] xxx") and message.title.endswith("…")
    assert len(message.title) <= len("[rail] ") + 250

    words = " ".join(f"word{i}" for i in range(1000))
    message = render(make_delivery(summary=words))
    summary = message.text.split("\n\n")[-1]
    assert 500 <= len(summary) <= 600
    last = summary.removesuffix("…").split()[-1]
    assert re.fullmatch(r"word\d+", last) and last in words.split()


def test_render_newlines_cannot_start_markdown_blocks() -> None:
    message = render(make_delivery(title="a\n# heading\n- item\n> quote", summary="x\n\n1. one"))
    lines = message.markdown.splitlines()
    assert not any(line.startswith(("#", ">", "1.")) for line in lines)
    assert "<h1>" not in md_to_html(message.markdown)


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "ftp://x.org/a", "/rel"],
)
def test_render_links_only_http(url: str) -> None:
    message = render(make_delivery(url=url))
    assert "not an http(s) link" in message.text
    assert "href" not in message.html
    assert "<script" not in message.html
    assert "href" not in md_to_html(message.markdown)
    assert f"<{url}" not in message.markdown


def test_render_link_parentheses_and_quotes_escaped() -> None:
    message = render(make_delivery(url='https://ex.org/wiki/A_(b)?q="x"<y>'))
    assert "<https://ex.org/wiki/A_%28b%29?q=%22x%22%3Cy%3E>" in message.markdown
    assert 'href="https://ex.org/wiki/A_%28b%29?q=%22x%22%3Cy%3E"' in message.html
    assert 'href="https://ex.org/wiki/A_%28b%29?q=%22x%22%3Cy%3E"' in md_to_html(message.markdown)


# --- sending -----------------------------------------------------------------------------------


async def test_email_is_multipart_alternative(smtp_server) -> None:
    notifier = Notifier({"mail": [smtp_server.url(to="desk@example.org")]}, timeout=10)
    delivery = make_delivery(channel="mail", title="<script>alert(1)</script> & Co")
    result = await notifier.send("mail", render(delivery))
    assert result == SendResult(True, (0,), None)
    assert smtp_server.wait_for(1)
    mail = smtp_server.messages[0]
    assert mail["Subject"] == "[rail] <script>alert(1)</script> & Co"
    assert mail["To"] == "desk@example.org"
    assert mail.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    html = mail.get_body(("html",)).get_content()
    plain = mail.get_body(("plain",)).get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html
    assert "<script" not in html
    assert 'href="https://news.example.org/2025/07/railway-opens/"' in html
    assert "https://news.example.org/2025/07/railway-opens/" in plain
    assert "<script>alert(1)</script> & Co" in plain  # plain text shows the title as is
    assert "timesca-search" in plain and "railway, rail*" in plain


async def test_a_json_webhook_receives_plain_text_without_backslashes(webhook_server) -> None:
    notifier = Notifier({"chat": [webhook_server.url("/hook")]}, timeout=10)
    message = render(make_delivery(title="**bold** _x_ 2025-07-03", summary="A.B. (c) #1"))
    result = await notifier.send("chat", message)
    assert result.ok and result.done == (0,)
    assert webhook_server.wait_for(1)
    body = webhook_server.received[0]
    assert body["message"] == message.chat_text
    assert body["message"].startswith("**bold** _x_ 2025-07-03\n")
    assert "A.B. (c) #1" in body["message"] and "\\" not in body["message"]
    assert body["title"] == "[rail] **bold** _x_ 2025-07-03"
    assert webhook_server.received_paths == ["/hook"]


async def test_a_text_only_service_gets_plain_text_with_links_and_mentions_inert(
    webhook_server,
) -> None:
    # Mattermost: apprise declares text only, and puts the title in the body
    notifier = Notifier({"mm": [f"mmost://127.0.0.1:{webhook_server.port}/tok3nabcdefgh"]})
    hostile = "[click](https://evil.example) @channel <!here> <https://evil.example|ok>"
    assert (await notifier.send("mm", render(make_delivery(title=hostile)))).ok
    assert webhook_server.wait_for(1)
    text = webhook_server.received[0]["text"]
    assert text.startswith("[rail] [click]\u200b(https://evil.example) @\u200bchannel")
    assert "<\u200b!here> <\u200bhttps://evil.example|ok>" in text
    assert "](" not in text and "@channel" not in text and "<!" not in text
    assert "\\" not in text


async def test_partial_failure_then_resend_with_skip(webhook_server) -> None:
    notifier = Notifier(
        {"chat": [webhook_server.url("/good"), webhook_server.url("/bad")]}, timeout=10
    )
    webhook_server.fail_with(503, path="/bad")
    message = render(make_delivery())
    first = await notifier.send("chat", message)
    assert not first.ok
    assert first.done == (0,)
    bad = webhook_server.url("/bad")
    assert first.error and first.error.startswith(f"{bad}: ") and "503" in first.error
    assert webhook_server.received_paths == ["/good"]

    webhook_server.recover()
    second = await notifier.send("chat", message, skip=first.done)
    assert second == SendResult(True, (0, 1), None)
    assert webhook_server.received_paths == ["/good", "/bad"]  # /good not sent twice
    assert sorted(webhook_server.requests) == [("/bad", 200), ("/bad", 503), ("/good", 200)]


async def test_unreachable_channel_is_a_failed_result_not_an_exception() -> None:
    notifier = Notifier({"chat": ["json://127.0.0.1:9/hook"]}, timeout=5)
    result = await notifier.send("chat", render(make_delivery()))
    assert not result.ok and result.done == () and result.error
    unknown = await notifier.send("nope", render(make_delivery()))
    assert not unknown.ok and "unknown channel" in (unknown.error or "")


async def test_send_deadline(webhook_server) -> None:
    webhook_server.hang(10, path="/slow")
    notifier = Notifier({"chat": [webhook_server.url("/slow")]}, timeout=1.0)
    started = time.monotonic()
    result = await notifier.send("chat", render(make_delivery()))
    elapsed = time.monotonic() - started
    assert not result.ok and result.done == ()
    assert 0.9 <= elapsed < 3.0, elapsed


async def test_console_prints_to_stdout(capsys) -> None:
    notifier = Notifier({"console": ["console://"]}, timeout=5)
    message = render(make_delivery(title="**bold** & <b>"))
    result = await notifier.send("console", message)
    assert result.ok
    out = capsys.readouterr().out
    assert "[rail] **bold** & <b>" in out  # plain text: no Markdown escapes on a terminal
    assert "Link: https://news.example.org/2025/07/railway-opens/" in out
    assert "The new line links the capital to the south." in out


async def test_test_alert_reports_each_channel(webhook_server) -> None:
    webhook_server.fail_with(500, path="/down")
    notifier = Notifier(
        {"up": [webhook_server.url("/up")], "down": [webhook_server.url("/down")]}, timeout=5
    )
    results = await notify.test_alert(notifier)
    assert results["up"].ok and not results["down"].ok
    assert webhook_server.received[0]["title"] == "[worker] test alert"
    only = await notify.test_alert(notifier, "up")
    assert list(only) == ["up"]
    with pytest.raises(ValueError, match="unknown channel"):
        await notify.test_alert(notifier, "nope")


async def test_a_failed_test_alert_names_the_channels_url_masked_not_its_index(
    webhook_server,
) -> None:
    webhook_server.fail_with(500, path="/down")
    secret = "S3cretHookPass"
    url = f"json://alice:{secret}@127.0.0.1:{webhook_server.port}/down"
    results = await notify.test_alert(Notifier({"down": [url]}, timeout=5))
    error = results["down"].error or ""
    assert error.startswith("json://alice:") and f"127.0.0.1:{webhook_server.port}/down" in error
    assert secret not in error and "[0]" not in error


# --- secrets -------------------------------------------------------------------------------------


async def test_secrets_never_logged_nor_in_errors(
    smtp_server, webhook_server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "Hunter2-Pass"
    token = "123456789:SecretBotTokenXYZabc"
    ntfy_token = "tk_SecretNtfyToken42"
    closed = "mailto://bob:{}@127.0.0.1:9?smtp=127.0.0.1&mode=insecure&from=w@example.org"
    notifier = Notifier(
        {
            "mail": [smtp_server.url(user="bob", password=password)],
            "dead-mail": [closed.format(password)],
            "tg": [f"tgram://{token}/12345"],
            "ntfy": [f"ntfy://127.0.0.1:{webhook_server.port}/topic?token={ntfy_token}"],
        },
        timeout=5,
    )
    assert all(
        password not in u and token not in u
        for c in notifier.channels
        for u in notifier.describe(c)
    )
    webhook_server.fail_with(503)
    message = render(make_delivery())
    ok = await notifier.send("mail", message)
    dead = await notifier.send("dead-mail", message)
    ntfy = await notifier.send("ntfy", message)
    assert ok.ok and smtp_server.logins == [("PLAIN", "bob", password)]  # it was really used
    assert not dead.ok and not ntfy.ok
    assert webhook_server.requests, "ntfy really posted (with its token)"
    check_url(f"tgram://{token}")  # refused or not, never logged
    for text in (caplog.text, dead.error or "", ntfy.error or ""):
        for secret in (password, token, "SecretBotTokenXYZabc", ntfy_token):
            assert secret not in text


# --- the delivery loop -------------------------------------------------------------------------


@dataclass
class Row:
    delivery: Delivery
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime | None = None
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    last_error: str | None = None
    done_targets: tuple[int, ...] = ()
    sent_at: datetime | None = None


class FakeQueue:
    """An in-memory DeliveryQueue with the store's semantics: due = pending, next try reached,
    not leased by a live claim; a claim leases rows; marking releases the lease."""

    def __init__(self, deliveries: list[Delivery]) -> None:
        self.rows = {
            d.id: Row(d, attempts=d.attempts, done_targets=d.done_targets) for d in deliveries
        }
        self.claims: list[dict] = []
        self.events: list[tuple[str, int, float]] = []  # (what, id, monotonic time)

    def claim_due(self, *, owner, now, lease, limit, channels=None):
        due = [
            r
            for r in self.rows.values()
            if r.status == "pending"
            and (r.next_attempt_at is None or r.next_attempt_at <= now)
            and (r.claimed_until is None or r.claimed_until <= now)
            and (channels is None or r.delivery.channel in channels)
        ]
        due.sort(
            key=lambda r: (r.next_attempt_at or datetime.min.replace(tzinfo=UTC), r.delivery.id)
        )
        taken = due[:limit]
        for r in taken:
            r.claimed_by, r.claimed_until = owner, now + timedelta(seconds=lease)
        self.claims.append(
            {
                "owner": owner,
                "lease": lease,
                "limit": limit,
                "channels": channels,
                "ids": [r.delivery.id for r in taken],
            }
        )
        return [
            replace(r.delivery, attempts=r.attempts, done_targets=r.done_targets) for r in taken
        ]

    def mark_sent(self, delivery_id, *, at):
        r = self.rows[delivery_id]
        r.status, r.sent_at, r.claimed_by, r.claimed_until = "sent", at, None, None
        self.events.append(("sent", delivery_id, time.monotonic()))

    def mark_attempt_failed(self, delivery_id, *, error, done_targets, next_attempt_at, at):
        r = self.rows[delivery_id]
        r.attempts += 1
        r.last_error, r.done_targets = error, tuple(done_targets)
        r.next_attempt_at = next_attempt_at
        r.status = "pending" if next_attempt_at is not None else "failed"
        r.claimed_by = r.claimed_until = None
        self.events.append(("failed", delivery_id, time.monotonic()))


def test_backoff_doubles_and_caps() -> None:
    alerts = AlertsConfig()
    assert [backoff(n, alerts) for n in range(1, 9)] == [30, 60, 120, 240, 480, 960, 1920, 3600]
    assert backoff(50, alerts) == 3600
    assert backoff(2, AlertsConfig(retry_base=5, retry_max=8)) == 8


async def test_deliver_due_retries_with_backoff_then_fails(webhook_server) -> None:
    alerts = AlertsConfig(max_attempts=3, send_timeout=5)
    notifier = Notifier({"chat": [webhook_server.url()]}, timeout=5)
    queue = FakeQueue([make_delivery(1)])
    row = queue.rows[1]
    webhook_server.fail_with(503)

    report = await deliver_due(queue, notifier, alerts, owner="w1", now=NOW)
    assert (report.sent, report.retrying, report.failed) == (0, 1, 0)
    assert report.by_channel["chat"]["retrying"] == 1
    assert row.attempts == 1 and row.next_attempt_at == NOW + timedelta(seconds=30)
    assert row.status == "pending" and "503" in (row.last_error or "")
    assert queue.claims[0]["lease"] >= 2 * alerts.send_timeout
    assert queue.claims[0]["channels"] == ["chat"]

    # not due before its next try: nothing is sent
    report = await deliver_due(queue, notifier, alerts, owner="w1", now=NOW + timedelta(seconds=29))
    assert (report.sent, report.retrying, report.failed) == (0, 0, 0)
    assert len(webhook_server.requests) == 1 and row.attempts == 1

    t2 = NOW + timedelta(seconds=30)
    await deliver_due(queue, notifier, alerts, owner="w1", now=t2)
    assert row.attempts == 2 and row.next_attempt_at == t2 + timedelta(seconds=60)

    t3 = t2 + timedelta(seconds=60)
    report = await deliver_due(queue, notifier, alerts, owner="w1", now=t3)
    assert row.attempts == 3 and row.status == "failed" and row.next_attempt_at is None
    assert (report.retrying, report.failed) == (0, 1)

    # failed for good: never tried again, even once the channel is back
    webhook_server.recover()
    report = await deliver_due(queue, notifier, alerts, owner="w1", now=t3 + timedelta(days=1))
    assert report.sent == 0 and webhook_server.received == []
    assert len(webhook_server.requests) == 3


async def test_failing_channel_keeps_other_alerts_then_delivers_each_once(webhook_server) -> None:
    alerts = AlertsConfig(send_timeout=5)
    notifier = Notifier({"chat": [webhook_server.url()]}, timeout=5)
    queue = FakeQueue([make_delivery(i, title=f"Article {i}") for i in (1, 2, 3)])
    webhook_server.fail_with(503)

    report = await deliver_due(queue, notifier, alerts, owner="w1", now=NOW)
    # one try (the probe) failed; the channel stopped: the others lost no attempt, kept no lease
    assert report.retrying == 1 and len(webhook_server.requests) == 1
    assert [queue.rows[i].attempts for i in (1, 2, 3)] == [1, 0, 0]
    assert [queue.rows[i].next_attempt_at for i in (2, 3)] == [None, None]
    assert [queue.rows[i].claimed_until for i in (2, 3)] == [None, None]

    webhook_server.recover()
    t1 = NOW + timedelta(seconds=30)
    report = await deliver_due(queue, notifier, alerts, owner="w1", now=t1)
    assert report.sent == 3
    assert all(queue.rows[i].status == "sent" for i in (1, 2, 3))
    assert sorted(b["title"] for b in webhook_server.received) == [
        "[rail] Article 1",
        "[rail] Article 2",
        "[rail] Article 3",
    ]
    await deliver_due(queue, notifier, alerts, owner="w1", now=t1 + timedelta(hours=2))
    assert len(webhook_server.received) == 3


async def test_deliver_due_sends_all_due_in_batches(webhook_server) -> None:
    alerts = AlertsConfig(send_timeout=5)
    notifier = Notifier({"chat": [webhook_server.url()]}, timeout=5)
    queue = FakeQueue([make_delivery(i, title=f"Article {i}") for i in range(1, 31)])
    report = await deliver_due(queue, notifier, alerts, owner="w1", now=NOW)
    assert report.sent == 30 and report.by_channel == {
        "chat": {"sent": 30, "retrying": 0, "failed": 0, "deferred": 0}
    }
    assert sorted(b["title"] for b in webhook_server.received) == sorted(
        f"[rail] Article {i}" for i in range(1, 31)
    )
    assert [len(c["ids"]) for c in queue.claims] == [1, 20, 9]  # probe, batch, rest

    limited = FakeQueue([make_delivery(i) for i in range(1, 11)])
    report = await deliver_due(limited, notifier, alerts, owner="w1", now=NOW, limit=4)
    assert report.sent == 4
    assert sum(r.status == "sent" for r in limited.rows.values()) == 4


async def test_deliver_due_resumes_partial_delivery(webhook_server) -> None:
    alerts = AlertsConfig(send_timeout=5)
    notifier = Notifier({"chat": [webhook_server.url("/a"), webhook_server.url("/b")]}, timeout=5)
    queue = FakeQueue([make_delivery(1)])
    webhook_server.fail_with(503, path="/b")
    await deliver_due(queue, notifier, alerts, owner="w1", now=NOW)
    assert queue.rows[1].done_targets == (0,) and queue.rows[1].status == "pending"
    webhook_server.recover()
    await deliver_due(queue, notifier, alerts, owner="w1", now=NOW + timedelta(minutes=1))
    assert queue.rows[1].status == "sent"
    assert webhook_server.received_paths == ["/a", "/b"]


async def test_slow_channels_do_not_delay_another(webhook_server) -> None:
    # more hanging channels than asyncio's default thread pool (and apprise's) has threads
    alerts = AlertsConfig(send_timeout=2.0)
    webhook_server.hang(10, path="/slow")
    slow = {f"slow{i}": [webhook_server.url("/slow")] for i in range(8)}
    notifier = Notifier(
        {**slow, "fast": [webhook_server.url("/fast")]}, timeout=alerts.send_timeout
    )
    deliveries = [make_delivery(100 + i, channel=name) for i, name in enumerate(slow)]
    queue = FakeQueue(
        [*deliveries, make_delivery(1, channel="fast"), make_delivery(2, channel="fast")]
    )
    started = time.monotonic()
    report = await deliver_due(queue, notifier, alerts, owner="w1", now=NOW)
    elapsed = time.monotonic() - started
    at = {i: t - started for _, i, t in queue.events}
    assert queue.rows[1].status == "sent" and queue.rows[2].status == "sent"
    # the fast channel's two sends are done before any slow one's outcome (an order, not a
    # bound in seconds: 1.046 s against a 1.0 s bound once, on a loaded machine)
    assert max(at[1], at[2]) < min(at[d.id] for d in deliveries), at
    assert all(queue.rows[d.id].attempts == 1 for d in deliveries)
    assert min(at[d.id] for d in deliveries) >= 1.8, at
    assert elapsed < 4.0
    assert report.sent == 2 and report.retrying == 8
    # our deadline or apprise's socket read timeout (capped to the same value), whichever fires
    assert all(queue.rows[d.id].last_error for d in deliveries)


async def test_deliver_due_logs_one_line_per_outcome(
    webhook_server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker.notify")
    notifier = Notifier({"chat": [webhook_server.url()]}, timeout=5)
    queue = FakeQueue([make_delivery(1)])
    await deliver_due(queue, notifier, AlertsConfig(), owner="w1", now=NOW)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("worker.notify")]
    assert lines == [
        "alert sent: watchlist=rail channel=chat "
        "article=https://news.example.org/2025/07/railway-opens/ attempt=1"
    ]


def test_message_is_frozen() -> None:
    message = Message("t", "m", "h", "x")
    with pytest.raises(AttributeError):
        message.title = "other"  # type: ignore[misc]


def test_deliver_due_from_asyncio_run() -> None:
    # deliver_due is usable from a plain asyncio.run (the CLI's `worker once`)
    queue = FakeQueue([make_delivery(1, channel="console")])
    notifier = Notifier({"console": ["console://"]}, timeout=5)
    report = asyncio.run(deliver_due(queue, notifier, AlertsConfig(), owner="cli"))
    assert report.sent == 1 and queue.rows[1].status == "sent"


async def test_a_burst_of_emails_is_not_paced_by_apprise(smtp_server):
    """apprise waits 5.5 s between two emails to one URL by default; alerts do not: five
    emails to the real SMTP server go out in well under that."""
    notifier = Notifier({"mail": [smtp_server.url()]}, timeout=10)
    started = time.monotonic()
    for n in range(5):
        result = await notifier.send("mail", render(make_delivery(id=n, title=f"Story {n}")))
        assert result.ok, result.error
    assert smtp_server.wait_for(5)
    assert time.monotonic() - started < 5.0
    notifier.close()


class _HangingOnSecond:
    """A notifier whose first send succeeds and whose second never returns (a stuck service)."""

    timeout = 5.0

    def __init__(self) -> None:
        self.channels = ("chat",)
        self.sent: list[str] = []
        self.stuck = asyncio.Event()

    async def send(self, channel: str, message: Message, *, skip: object = ()) -> SendResult:
        if self.sent:
            self.stuck.set()
            await asyncio.Event().wait()  # until cancelled
        self.sent.append(message.title)
        return SendResult(True, (0,), None)


async def test_a_stop_mid_send_gives_back_untried_claims_and_keeps_those_in_flight(
    db_url: str,
) -> None:
    """A delivery round cancelled while its sends hang: the claims it took and did not try are
    given back (another worker can send them at once), while the deliveries being sent (a
    window of them) stay claimed until their lease ends (their threads may still be sending:
    no duplicate)."""
    from tests.test_store import Planner, items
    from worker.notify.deliver import SEND_WINDOW
    from worker.store import Store

    store = Store(db_url)
    store.migrate()
    store.store_page(
        "src",
        items(*(f"a{i}" for i in range(10))),
        Planner({"w": ("chat",)}),
        silent=False,
        now=NOW,
    )
    notifier = _HangingOnSecond()
    in_flight: set[int] = set()
    round_ = asyncio.create_task(
        deliver_due(
            store,
            notifier,
            AlertsConfig(),
            owner="me",
            now=NOW,  # type: ignore[arg-type]
            in_flight=in_flight,
        )
    )
    await asyncio.wait_for(notifier.stuck.wait(), 5)
    round_.cancel()
    with pytest.raises(asyncio.CancelledError):
        await round_
    assert len(notifier.sent) == 1 and len(in_flight) == SEND_WINDOW == 4
    released = store.release_claims("me", keep=in_flight)
    assert released == 9 - 4  # claimed in the second batch, never tried
    later = NOW + timedelta(seconds=1)
    other = store.claim_due(owner="other", now=later, lease=86400, limit=100)
    assert len(other) == 5 and not in_flight & {d.id for d in other}
    after_lease = NOW + timedelta(hours=1)
    again = store.claim_due(owner="other", now=after_lease, lease=60, limit=100)
    assert {d.id for d in again} == in_flight  # their lease ran out: due again
    store.close()


async def test_an_email_resent_after_a_crash_carries_the_same_message_id(smtp_server) -> None:
    """Mail clients fold two messages with one Message-ID: it is derived from the delivery."""
    notifier = Notifier({"mail": [smtp_server.url(to="desk@example.org")]}, timeout=10)
    try:
        for delivery in (make_delivery(7), make_delivery(7, attempts=1), make_delivery(8)):
            assert (await notifier.send("mail", render(delivery))).ok
    finally:
        notifier.close()
    assert smtp_server.wait_for(3)
    ids = [mail["Message-ID"] for mail in smtp_server.messages]
    assert ids[0] == ids[1] == render(make_delivery(7)).message_id
    assert re.fullmatch(r"<worker\.7\.[0-9a-f]{16}@alerts\.invalid>", ids[0])
    assert ids[2] != ids[0] and ids[2].startswith("<worker.8.")
    assert all(len(mail.get_all("Message-ID")) == 1 for mail in smtp_server.messages)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mailtos://user:pw@smtp.example.org?to=desk@example.org", "email"),
        ("console://", "console"),
        ("ntfys://ntfy.sh/topic", "text"),
        ("json://127.0.0.1:9/hook", "text"),
        ("form://127.0.0.1:9/hook", "text"),
        ("xml://127.0.0.1:9/hook", "text"),
        ("mmost://127.0.0.1:9/tok3nabcdefgh", "text"),
        ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", "markdown"),
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7F", "markdown"),
        ("tgram://123456789:ABCdefGHIjklMNOpqrSTUvwxYZ/12345", "markdown"),
    ],
)
def test_each_service_gets_the_body_format_apprise_says_it_takes(url: str, expected: str) -> None:
    notifier = Notifier({"c": [url]}, timeout=5)
    try:
        assert notifier.body_formats("c") == [expected]  # email: HTML, console: plain text
    finally:
        notifier.close()


async def test_ntfy_receives_plain_text_without_backslash_escapes(webhook_server) -> None:
    notifier = Notifier({"phone": [f"ntfy://127.0.0.1:{webhook_server.port}/alerts"]}, timeout=10)
    message = render(make_delivery(title="Rail-way (2025) #1 *now*", summary="A.B. & C_D"))
    try:
        assert (await notifier.send("phone", message)).ok
    finally:
        notifier.close()
    assert webhook_server.wait_for(1)
    sent = webhook_server.received[0]
    assert sent["title"] == "[rail] Rail-way (2025) #1 *now*"
    assert "A.B. & C_D" in sent["message"] and "\\" not in sent["message"]
