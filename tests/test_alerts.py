"""Issue #11: time zone, message templates (and, below, digests, quiet hours, rate limits)."""

from __future__ import annotations

import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e import run_worker, source_toml, write_config
from worker.config import ConfigError, parse_config
from worker.models import Delivery
from worker.notify import Templates, render

CASES = tomllib.loads(
    (Path(__file__).parent / "cases" / "alerts_check.toml").read_text(encoding="utf-8")
)["case"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_check_refuses_a_broken_alert_setting_naming_its_key(tmp_path, capsys, case):
    path = tmp_path / "w.toml"
    path.write_text(case["toml"].replace("\\n", "\n") + "\n", encoding="utf-8")
    run = run_worker(capsys, path, "check")
    assert run.code != 0
    assert f"{path}: {case['key']}:" in run.err, run.err
    assert "Traceback" not in run.err


def _delivery(**fields: object) -> Delivery:
    values: dict[str, object] = {
        "id": 7,
        "watchlist": "rail",
        "channel": "desk",
        "attempts": 0,
        "article_url": "https://example.org/a",
        "title": "Rail strike",
        "summary": "Trains stop.",
        "published": datetime(2026, 3, 1, 23, 30, tzinfo=UTC),
        "source": "local",
        "keywords": ("rail",),
        "done_targets": (),
    }
    return Delivery(**(values | fields))  # type: ignore[arg-type]


def test_the_default_title_template_gives_todays_message():
    """The documented default title template renders exactly the built-in title."""
    delivery = _delivery()
    templated = render(delivery, templates=Templates(title="[{{ watchlist }}] {{ article.title }}"))
    assert templated == render(delivery)


def test_dates_in_messages_are_shown_in_the_config_time_zone():
    from zoneinfo import ZoneInfo

    delivery = _delivery()  # 23:30 UTC on 1 March is 2 March in Tokyo
    assert "Published: 2026-03-01" in render(delivery).text
    assert "Published: 2026-03-02" in render(delivery, tz=ZoneInfo("Asia/Tokyo")).text


@pytest.mark.parametrize(
    "body",
    [
        "{{ article.title }}",
        "{{ article.title|safe }}",
        "{% autoescape false %}{{ article.title }}{% endautoescape %}",
    ],
)
def test_scraped_markup_is_escaped_whatever_the_template_does(body):
    title = "<img src=x onerror=alert(1)> *bold* [x](https://evil.example) @everyone"
    message = render(_delivery(title=title), templates=Templates(body=body))
    assert "<img" not in message.html and "&lt;img src=x" in message.html
    assert "\\*bold\\*" in message.markdown and "](https" not in message.markdown
    assert "@\u200beveryone" in message.markdown and "@\u200beveryone" in message.chat_text
    assert message.text == title  # plain text stays plain


def test_template_files_are_read_relative_to_the_config(tmp_path):
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "title.j2").write_text("NEWS {{ article.title }}", encoding="utf-8")
    config = parse_config('[templates]\ntitle = "@tpl/title.j2"\n', tmp_path / "w.toml")
    assert config.templates.title == "NEWS {{ article.title }}"


def test_a_watchlist_template_overrides_the_global_one(tmp_path):
    from worker.notify import Rendering

    config = parse_config(
        '[templates]\ntitle = "G {{ article.title }}"\n'
        '[channels]\ndesk = "json://127.0.0.1:9/x"\n'
        '[[watchlists]]\nname = "rail"\nkeywords = ["rail"]\nchannels = ["desk"]\n'
        'title_template = "W {{ article.title }}"\n'
        '[[watchlists]]\nname = "other"\nkeywords = ["x"]\nchannels = ["desk"]\n',
        tmp_path / "w.toml",
    )
    rendering = Rendering.from_config(config)
    assert rendering.message(_delivery()).title == "W Rail strike"
    assert rendering.message(_delivery(watchlist="other")).title == "G Rail strike"


def test_an_unknown_time_zone_is_refused_by_name():
    with pytest.raises(ConfigError) as caught:
        parse_config('timezone = "Europe/Atlantis"\n')
    assert caught.value.problems[0].startswith("timezone: unknown time zone 'Europe/Atlantis'")


def test_a_title_template_is_rendered_in_the_mail_subject_with_markup_escaped_in_the_body(
    tmp_path, capsys, sqlite_url, news_site, smtp_server
):
    """`worker once` against the local site and a real SMTP server: the subject comes from the
    user's title template, and a page's markup stays text in the HTML body even under |safe."""
    config = write_config(
        tmp_path / "w.toml",
        sqlite_url,
        sources=source_toml(news_site),
        channels={"mail": smtp_server.url(to="desk@example.org")},
    )
    text = config.read_text(encoding="utf-8")
    config.write_text(
        'timezone = "Asia/Tokyo"\n'
        + text
        + '\n[templates]\ntitle = "Rail news: {{ article.title }} ({{ article.published }})"\n'
        'body = "<p>{{ article.title|safe }}</p> {{ article.url }}"\n',
        encoding="utf-8",
    )
    assert run_worker(capsys, config, "check").code == 0
    assert run_worker(capsys, config, "once").code == 0
    news_site.publish(
        "Railway <b>Crossing</b> Opens", published=datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    )
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    assert smtp_server.wait_for(1)
    mail = smtp_server.messages[0]
    assert mail["subject"] == "Rail news: Railway <b>Crossing</b> Opens (2026-03-02)"
    html = mail.get_body(("html",)).get_content()
    assert "<p>Railway &lt;b&gt;Crossing&lt;/b&gt; Opens</p>" in html


# --- digests, quiet hours, rate limits (`worker once` runs: each one a restart; the daemon as a
# subprocess, with SIGTERM and SIGKILL restarts in the middle: tests/test_alerts_daemon.py) -----


def _paced_config(
    path: Path,
    db_url: str,
    site,
    hook_url: str,
    *,
    channel: str = "",
    watchlist: str = "",
    top: str = "",
    tail: str = "",
) -> Path:
    path.write_text(
        f'{top}\ndatabase = "{db_url}"\n[http]\nmin_delay = 0\ntimeout = 10\nretries = 1\n'
        '[alerts]\nretry_base = "1s"\nretry_max = "1s"\nmax_attempts = 5\n'
        f'[channels.hook]\nurl = "{hook_url}"\n{channel}\n'
        + source_toml(site)
        + f'\n[[watchlists]]\nname = "rail"\nkeywords = ["rail*"]\nchannels = ["hook"]\n'
        f"{watchlist}\n{tail}\n",
        encoding="utf-8",
    )
    return path


def _titles(post: dict) -> list[str]:
    """The article titles a digest message lists (one `- TITLE: URL (...)` line each)."""
    return [
        line[2:].rsplit(": http", 1)[0]
        for line in str(post["message"]).splitlines()
        if line.startswith("- ")
    ]


def _once(capsys, config: Path) -> None:
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run


def test_a_digest_holds_exactly_the_articles_since_the_previous_one(
    tmp_path, capsys, db_url, news_site, webhook_server
):
    config = _paced_config(
        tmp_path / "w.toml", db_url, news_site, webhook_server.url(), watchlist='digest = "3s"'
    )
    _once(capsys, config)  # the baseline
    news_site.publish("Rail Line One Opens")
    news_site.publish("Rail Line Two Opens")
    _once(capsys, config)
    _once(capsys, config)  # a restart before the digest is due sends nothing yet
    assert webhook_server.received == []
    time.sleep(3.5)
    _once(capsys, config)
    assert webhook_server.wait_for(1)
    first = webhook_server.received[0]
    assert first["title"] == "[rail] 2 new articles"
    assert sorted(_titles(first)) == ["Rail Line One Opens", "Rail Line Two Opens"]

    news_site.publish("Rail Line Three Opens")
    _once(capsys, config)
    time.sleep(3.5)
    _once(capsys, config)
    _once(capsys, config)
    assert webhook_server.wait_for(2)
    time.sleep(0.3)
    assert len(webhook_server.received) == 2
    assert _titles(webhook_server.received[1]) == ["Rail Line Three Opens"]
    assert webhook_server.received[1]["title"] == "[rail] 1 new article"


def test_a_failed_digest_is_retried_whole(tmp_path, capsys, db_url, news_site, webhook_server):
    config = _paced_config(
        tmp_path / "w.toml", db_url, news_site, webhook_server.url(), watchlist='digest = "1s"'
    )
    _once(capsys, config)
    news_site.publish("Rail Line One Opens")
    news_site.publish("Rail Line Two Opens")
    _once(capsys, config)
    time.sleep(1.5)
    webhook_server.fail_with(500)
    assert run_worker(capsys, config, "once").code == 1  # an alert not sent: exit 1
    assert webhook_server.received == [] and webhook_server.requests
    webhook_server.recover()
    news_site.publish("Rail Line Three Opens")  # a later match waits for the next digest
    time.sleep(1.5)
    _once(capsys, config)
    assert webhook_server.wait_for(1)
    assert sorted(_titles(webhook_server.received[0])) == [
        "Rail Line One Opens",
        "Rail Line Two Opens",
    ]
    time.sleep(1.5)
    _once(capsys, config)
    assert webhook_server.wait_for(2)
    assert _titles(webhook_server.received[1]) == ["Rail Line Three Opens"]
    alerts = run_worker(capsys, config, "alerts", "--json").json()
    assert len(alerts) == 3 and {a["status"] for a in alerts} == {"sent"}


def test_a_rate_limited_channel_gets_its_limit_then_one_folded_message(
    tmp_path, capsys, db_url, news_site, webhook_server
):
    config = _paced_config(
        tmp_path / "w.toml", db_url, news_site, webhook_server.url(), channel='rate_limit = "2/4s"'
    )
    _once(capsys, config)
    titles = [f"Rail Story Number {n}" for n in range(1, 6)]
    for title in titles:
        news_site.publish(title)
    _once(capsys, config)
    assert webhook_server.wait_for(2)
    _once(capsys, config)  # a restart within the window sends nothing more
    time.sleep(0.3)
    assert len(webhook_server.received) == 2
    time.sleep(4.5)
    _once(capsys, config)
    _once(capsys, config)
    assert webhook_server.wait_for(3)
    time.sleep(0.3)
    assert len(webhook_server.received) == 3
    singles = [str(p["title"]).removeprefix("[rail] ") for p in webhook_server.received[:2]]
    folded = _titles(webhook_server.received[2])
    assert webhook_server.received[2]["title"] == "[rail] 3 new articles"
    assert sorted(singles + folded) == sorted(titles)  # every article once


def _minute(now: datetime, offset: int) -> str:
    minute = (now.hour * 60 + now.minute + offset) % 1440
    return f"{minute // 60:02d}:{minute % 60:02d}"


def test_quiet_hours_wrapping_midnight_in_a_local_time_zone_hold_alerts_then_send_one(
    tmp_path, capsys, db_url, news_site, webhook_server
):
    from zoneinfo import ZoneInfo

    zone = "America/New_York"
    now = datetime.now(ZoneInfo(zone))
    # quiet from a minute ago until two minutes ago: all day but one minute, across midnight
    start, end = (-1, -2) if (now.hour * 60 + now.minute) % 1440 >= 2 else (-3, -4)
    quiet = f'quiet_hours = "{_minute(now, start)}-{_minute(now, end)}"'
    assert _minute(now, start) > _minute(now, end)  # it wraps midnight
    path = tmp_path / "w.toml"
    top = f'timezone = "{zone}"'
    config = _paced_config(path, db_url, news_site, webhook_server.url(), channel=quiet, top=top)
    _once(capsys, config)
    news_site.publish("Rail Line One Opens")
    news_site.publish("Rail Line Two Opens")
    _once(capsys, config)
    _once(capsys, config)  # restarts within the quiet hours
    time.sleep(0.3)
    assert webhook_server.received == []

    awake = f'quiet_hours = "{_minute(now, 120)}-{_minute(now, 180)}"'  # the quiet hours end
    config = _paced_config(path, db_url, news_site, webhook_server.url(), channel=awake, top=top)
    _once(capsys, config)
    _once(capsys, config)
    assert webhook_server.wait_for(1)
    time.sleep(0.3)
    assert len(webhook_server.received) == 1
    assert sorted(_titles(webhook_server.received[0])) == [
        "Rail Line One Opens",
        "Rail Line Two Opens",
    ]


# --- the daemon as a subprocess: a feed of matches, a template in the mail subject ------------


def json_feed_errors(feed: object) -> list[str]:
    """What makes `feed` no JSON Feed 1.1 (tests/fixtures/jsonfeed-1.1.schema.json, written
    from the spec); [] when it is one."""
    import json

    from jsonschema import Draft202012Validator

    schema_path = Path(__file__).parent / "fixtures" / "jsonfeed-1.1.schema.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(feed)
    ]


def test_the_json_feed_schema_refuses_what_the_spec_does_not_allow():
    """The schema the feed tests use can fail: each feed below breaks one rule of JSON Feed 1.1."""
    item = {"id": "1", "content_text": "x", "date_published": "2026-03-01T12:00:00+09:00"}
    good = {"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [item]}
    assert json_feed_errors(good) == []
    broken = [
        {k: v for k, v in good.items() if k != "title"},  # no title
        {k: v for k, v in good.items() if k != "items"},  # no items
        good | {"version": "https://jsonfeed.org/version/1"},
        good | {"items": [{"content_text": "x"}]},  # an item without an id
        good | {"items": [{"id": "1", "title": "no content"}]},
        good | {"items": [item | {"date_published": "2026-03-01 12:00"}]},  # not RFC 3339
        good | {"items": [item | {"authors": [{}]}]},  # an author with nothing
        good | {"items": [item | {"content-text": "x"}]},  # a misspelt key
    ]
    for feed in broken:
        assert json_feed_errors(feed), feed


@pytest.fixture
def workers(tmp_path):
    from tests.test_daemon import Worker

    started = []

    def start(config, *args):
        started.append(Worker(tmp_path, config, *args))
        return started[-1]

    yield start
    for worker in started:
        worker.kill()


def test_the_daemon_mails_with_the_users_templates_and_serves_a_feed_that_feedparser_reads(
    tmp_path, db_url, news_site, smtp_server, workers
):
    import json
    import urllib.request

    import feedparser

    from tests.test_daemon import ALERT, STARTUP, free_port

    port = free_port()
    config = _paced_config(
        tmp_path / "w.toml",
        db_url,
        news_site,
        smtp_server.url(to="desk@example.org"),
        tail=f'[http_status]\nport = {port}\n[templates]\ntitle = "RAIL: {{{{ article.title }}}}"\n'
        'body = "<p>{{ article.summary|safe }}</p>"',
    )
    config.write_text(
        config.read_text(encoding="utf-8").replace('every = "1m"', 'every = "1s"'),
        encoding="utf-8",
    )
    worker = workers(config, "run")
    worker.expect(lambda: worker.passes("local") >= 1, STARTUP, "the first pass")
    news_site.publish("Rail Line One Opens", "The <b>first</b> line.")
    news_site.publish("Rail Line Two Opens")
    news_site.publish("Glaciers Retreat")  # matches nothing
    worker.expect(lambda: len(smtp_server.messages) >= 2, ALERT, "two mails")
    assert sorted(m["subject"] for m in smtp_server.messages) == [
        "RAIL: Rail Line One Opens",
        "RAIL: Rail Line Two Opens",
    ]
    # the page's markup stays text in the HTML mail, even under the user's |safe
    [first] = [m for m in smtp_server.messages if m["subject"] == "RAIL: Rail Line One Opens"]
    html = first.get_body(("html",)).get_content()
    assert "<p>The &lt;b&gt;first&lt;/b&gt; line.</p>" in html and "<b>first" not in html

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/feeds/rail.atom", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("application/atom+xml")
        atom = feedparser.parse(r.read())
    assert not atom.bozo, atom.bozo_exception
    assert atom.version == "atom10"
    # newest match first (the baseline's matches come after: matched, never alerted)
    titles = [e.title for e in atom.entries]
    assert titles[:2] == ["Rail Line Two Opens", "Rail Line One Opens"]
    assert "Glaciers Retreat" not in titles
    assert atom.entries[1].summary == "The <b>first</b> line."  # text, escaped in the XML
    assert all(e.link.startswith(news_site.base_url) for e in atom.entries)

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/feeds/rail.json", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("application/feed+json")
        body = r.read()
    # (feedparser 6 reads no JSON Feed: the feed is checked against the JSON Feed 1.1 schema)
    parsed = json.loads(body)
    assert json_feed_errors(parsed) == []
    assert [item["title"] for item in parsed["items"]] == titles
    assert all(item["id"] and item["url"].startswith("http") for item in parsed["items"])
    assert [item["id"] for item in parsed["items"]] == [e.id for e in atom.entries]
    assert parsed["items"][1]["content_text"] == "The <b>first</b> line."
    assert all("date_published" in item for item in parsed["items"][:2])
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/feeds/nope.atom", timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
    else:
        pytest.fail("an unknown watchlist's feed answered")
    assert worker.stop()[0] == 0


def test_worker_feed_prints_the_feed_of_a_watchlist(
    tmp_path, capsys, sqlite_url, news_site, webhook_server
):
    import json

    import feedparser

    config = _paced_config(tmp_path / "w.toml", sqlite_url, news_site, webhook_server.url())
    _once(capsys, config)
    news_site.publish("Rail Line One Opens")
    _once(capsys, config)
    run = run_worker(capsys, config, "feed", "rail")  # Atom by default
    assert run.code == 0, run
    parsed = feedparser.parse(run.out)
    assert parsed.version == "atom10" and not parsed.bozo
    assert parsed.entries[0].title == "Rail Line One Opens"
    run = run_worker(capsys, config, "feed", "rail", "--format", "json")
    assert run.code == 0, run
    parsed_json = json.loads(run.out)
    assert json_feed_errors(parsed_json) == []
    assert parsed_json["items"][0]["title"] == "Rail Line One Opens"
    assert parsed_json["items"][0]["id"] == parsed.entries[0].id
    run = run_worker(capsys, config, "feed", "nope")
    assert run.code == 2 and "unknown watchlist 'nope' (watchlists: rail)" in run.err


# --- the watchdog ------------------------------------------------------------------------------


def test_a_source_whose_markup_changed_raises_one_watchdog_message_and_one_on_recovery(
    tmp_path, capsys, db_url, news_site, webhook_server
):
    """failing_passes = 2: the second failed pass in a row opens an incident (one message, with
    the error naming the selector); more failed passes, each a restart, send nothing more; the
    first good pass sends one recovery message."""
    path = tmp_path / "w.toml"

    def write(item: str) -> Path:
        config = _paced_config(
            path,
            db_url,
            news_site,
            webhook_server.url("/hook"),
            channel=f'[channels.ops]\nurl = "{webhook_server.url("/dog")}"',
            tail='[watchdog]\nchannels = ["ops"]\nfailing_passes = 2',
        )
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace('item = "', f'item = "{item}', 1), encoding="utf-8")
        return config

    _once(capsys, write(""))
    broken = write("div.markup-changed ")  # the site's teasers are no longer found
    for _ in range(4):
        assert run_worker(capsys, broken, "once").code == 1
    assert webhook_server.wait_for(1)
    time.sleep(0.3)
    assert webhook_server.received_paths == ["/dog"]
    opened = webhook_server.received[0]
    assert opened["title"] == "[worker] source local is failing"
    assert "2 passes in a row" in opened["message"] and "div.markup-changed" in opened["message"]

    _once(capsys, write(""))
    _once(capsys, write(""))
    assert webhook_server.wait_for(2)
    time.sleep(0.3)
    assert webhook_server.received_paths == ["/dog", "/dog"]
    assert webhook_server.received[1]["title"] == "[worker] source local recovered"


def test_healthz_lists_the_open_incidents(tmp_path, db_url, news_site, webhook_server, workers):
    import json
    import urllib.request

    from tests.test_daemon import STARTUP, free_port

    port = free_port()
    config = _paced_config(
        tmp_path / "w.toml",
        db_url,
        news_site,
        webhook_server.url("/hook"),
        tail=f'[http_status]\nport = {port}\n[watchdog]\nchannels = ["hook"]\nfailing_passes = 1',
    )
    text = config.read_text(encoding="utf-8").replace('item = "', 'item = "div.gone ', 1)
    config.write_text(text.replace('every = "1m"', 'every = "1s"'), encoding="utf-8")
    worker = workers(config, "run")
    worker.expect(lambda: webhook_server.received, STARTUP, "the watchdog's message")

    def incidents() -> list:
        url = f"http://127.0.0.1:{port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())["incidents"]
        except urllib.error.HTTPError as exc:  # 503 while a source fails? (not strict: 200)
            return json.loads(exc.read())["incidents"]

    # /healthz reads the database's part every 2 s (sooner after a pass): it shows soon
    worker.expect(incidents, 10, "the incident in /healthz")
    found = incidents()
    assert [(i["kind"], i["subject"]) for i in found] == [("failing", "local")]
    assert "div.gone" in found[0]["detail"]
    worker.expect(lambda: worker.passes("local") >= 3, STARTUP, "more failed passes")
    assert len(webhook_server.received) == 1  # one message per incident, not one per pass
    assert worker.stop()[0] == 0


def test_a_429_from_the_service_holds_the_channel_and_folds_what_waits(
    tmp_path, capsys, db_url, news_site, webhook_server
):
    config = _paced_config(
        tmp_path / "w.toml", db_url, news_site, webhook_server.url(), channel='rate_limit = "5/1h"'
    )
    _once(capsys, config)
    titles = ["Rail Story One", "Rail Story Two", "Rail Story Three"]
    for title in titles:
        news_site.publish(title)
    webhook_server.fail_with(429)
    assert run_worker(capsys, config, "once").code == 1
    assert webhook_server.received == [] and len(webhook_server.requests) == 1
    webhook_server.recover()
    _once(capsys, config)
    _once(capsys, config)
    assert webhook_server.wait_for(1)
    time.sleep(0.3)
    assert len(webhook_server.received) == 1
    assert sorted(_titles(webhook_server.received[0])) == sorted(titles)


def test_a_channel_failing_for_good_raises_one_watchdog_message_and_one_on_recovery(
    tmp_path, capsys, db_url, news_site, webhook_server
):
    config = _paced_config(
        tmp_path / "w.toml",
        db_url,
        news_site,
        webhook_server.url("/hook"),
        channel=f'[channels.ops]\nurl = "{webhook_server.url("/dog")}"',
        tail='[watchdog]\nchannels = ["ops"]',
    )
    text = config.read_text(encoding="utf-8").replace("max_attempts = 5", "max_attempts = 1")
    config.write_text(text, encoding="utf-8")
    _once(capsys, config)
    webhook_server.fail_with(500, "/hook")
    news_site.publish("Rail Story One")
    assert run_worker(capsys, config, "once").code == 1
    news_site.publish("Rail Story Two")
    assert run_worker(capsys, config, "once").code == 1
    assert webhook_server.wait_for(1)
    time.sleep(0.3)
    assert webhook_server.received_paths == ["/dog"]
    assert webhook_server.received[0]["title"] == "[worker] channel hook cannot deliver"
    webhook_server.recover()
    news_site.publish("Rail Story Three")
    _once(capsys, config)
    assert webhook_server.wait_for(3)
    time.sleep(0.3)
    assert sorted(webhook_server.received_paths) == ["/dog", "/dog", "/hook"]
    dog = [
        post["title"]
        for post, where in zip(webhook_server.received, webhook_server.received_paths, strict=True)
        if where == "/dog"
    ]
    assert dog == ["[worker] channel hook cannot deliver", "[worker] channel hook recovered"]


def test_an_incident_is_told_once_when_it_opens_and_once_when_it_closes_across_restarts(db_url):
    """Each message is queued once per watchdog channel, in the transaction that records it was
    queued; a restart queues nothing again; each channel's message is claimed by one process."""
    from worker.store import Store

    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    store = Store(db_url)
    store.migrate()
    for _ in range(2):
        store.observe("stale", "news", bad=True, detail="nothing new since x", at=t0)
    assert store.queue_notices(["ops", "desk"], at=t0) == 2
    assert store.queue_notices(["ops", "desk"], at=t0) == 0
    claim = store.claim_notice(owner="a", channel="ops", now=t0, lease=60)
    assert claim is not None
    assert (claim.notice.kind, claim.notice.subject, claim.notice.event) == (
        "stale",
        "news",
        "open",
    )
    assert store.claim_notice(owner="b", channel="ops", now=t0, lease=60) is None  # leased
    store.mark_watchdog_sent(claim.id, at=t0)
    store.close()

    store = Store(db_url)  # a restart: nothing owed again, the incident still open
    assert store.queue_notices(["ops", "desk"], at=t0) == 0
    assert store.claim_notice(owner="b", channel="ops", now=t0, lease=60) is None
    assert [i["subject"] for i in store.open_incidents()] == ["news"]
    store.observe("stale", "news", bad=False, detail=None, at=t0)
    # "desk" never sent the opening: it is skipped there, and so is the closing
    assert store.queue_notices(["ops", "desk"], at=t0) == 1
    assert store.claim_notice(owner="b", channel="desk", now=t0, lease=60) is None
    claim = store.claim_notice(owner="b", channel="ops", now=t0, lease=60)
    assert claim is not None and claim.notice.event == "close"
    store.mark_watchdog_sent(claim.id, at=t0)
    assert store.open_incidents() == []
    assert [(m["channel"], m["event"], m["status"]) for m in store.list_watchdog_messages()] == [
        ("ops", "open", "sent"),
        ("desk", "open", "skipped"),
        ("ops", "close", "sent"),
    ]
    store.close()


def test_a_failed_watchdog_message_is_retried_after_its_backoff_and_holds_up_only_its_channel(
    db_url,
):
    from datetime import timedelta

    from worker.store import Store

    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    store = Store(db_url)
    store.migrate()
    store.observe("failing", "news", bad=True, detail="selector matched nothing", at=t0)
    store.observe("failing", "news", bad=False, detail=None, at=t0)  # a suspect, forgotten
    store.observe("failing", "news", bad=True, detail="selector matched nothing", at=t0)
    assert store.queue_notices(["a", "b"], at=t0) == 2
    claim_a = store.claim_notice(owner="p", channel="a", now=t0, lease=60)
    claim_b = store.claim_notice(owner="p", channel="b", now=t0, lease=60)
    assert claim_a is not None and claim_b is not None
    retry_at = t0 + timedelta(seconds=30)
    store.mark_watchdog_failed(
        claim_a.id, error="HTTP 500", done_targets=[], next_attempt_at=retry_at, at=t0
    )
    store.mark_watchdog_sent(claim_b.id, at=t0)
    store.observe("failing", "news", bad=False, detail=None, at=t0)  # recovered
    # "a" is sending nothing yet (its opening waits): its opening is skipped, and the closing
    assert store.queue_notices(["a", "b"], at=t0) == 1
    assert store.claim_notice(owner="p", channel="a", now=retry_at, lease=60) is None
    closing = store.claim_notice(owner="p", channel="b", now=t0, lease=60)
    assert closing is not None and closing.notice.event == "close"
    store.close()


def test_a_watchdog_message_being_sent_when_its_incident_closes_gets_its_recovery_too(db_url):
    from worker.store import Store

    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    store = Store(db_url)
    store.migrate()
    store.observe("stale", "news", bad=True, detail="nothing new", at=t0)
    store.queue_notices(["a"], at=t0)
    opening = store.claim_notice(owner="p", channel="a", now=t0, lease=60)
    assert opening is not None
    store.observe("stale", "news", bad=False, detail=None, at=t0)  # while it is being sent
    assert store.queue_notices(["a"], at=t0) == 1
    assert store.claim_notice(owner="q", channel="a", now=t0, lease=60) is None  # in order
    store.mark_watchdog_sent(opening.id, at=t0)
    closing = store.claim_notice(owner="q", channel="a", now=t0, lease=60)
    assert closing is not None and closing.notice.event == "close"
    assert store.release_watchdog_claims("q") == 1  # given back at a stop
    again = store.claim_notice(owner="r", channel="a", now=t0, lease=60)
    assert again is not None and again.id == closing.id
    store.close()


def test_the_clock_offset_shifts_the_wall_clock_of_quiet_hours_and_cron_digests():
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from worker.notify import Pacing
    from worker.notify.pacing import ChannelRule, clock_offset

    assert clock_offset({"WORKER_CLOCK_OFFSET": "-90.5"}) == timedelta(seconds=-90.5)
    assert clock_offset({"WORKER_CLOCK_OFFSET": "soon"}) == timedelta(0)  # logged, ignored
    assert clock_offset({}) == timedelta(0)
    zone = ZoneInfo("America/New_York")
    now = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # 07:00 in New York
    quiet = {"desk": ChannelRule(quiet_hours=(22 * 60, 7 * 60))}
    pacing = Pacing(tz=zone, channels=quiet, digests={"rail": "0 8 * * *"})
    assert not pacing.quiet("desk", now)
    shifted = Pacing(
        tz=zone, channels=quiet, digests={"rail": "0 8 * * *"}, offset=timedelta(seconds=-5)
    )
    assert shifted.quiet("desk", now)  # 06:59:55 there
    since = now - timedelta(hours=1)
    assert not pacing.digest_due("rail", since, now + timedelta(minutes=59))
    assert pacing.digest_due("rail", since, now + timedelta(hours=1))
    later = Pacing(tz=zone, digests={"rail": "0 8 * * *"}, offset=timedelta(minutes=2))
    assert later.digest_due("rail", since, now + timedelta(minutes=59))


def test_a_watchdog_message_failed_for_good_is_requeued_by_retry_and_frees_its_channel(db_url):
    from worker.store import Store

    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    store = Store(db_url)
    store.migrate()
    store.observe("stale", "news", bad=True, detail="nothing new", at=t0)
    store.observe("stale", "wire", bad=True, detail="nothing new", at=t0)
    assert store.queue_notices(["a"], at=t0) == 2
    first = store.claim_notice(owner="p", channel="a", now=t0, lease=60)
    assert first is not None and first.notice.subject == "news"
    store.mark_watchdog_failed(
        first.id, error="HTTP 500", done_targets=[], next_attempt_at=None, at=t0
    )
    second = store.claim_notice(owner="p", channel="a", now=t0, lease=60)  # the next one goes
    assert second is not None and second.notice.subject == "wire"
    store.mark_watchdog_sent(second.id, at=t0)
    assert store.claim_notice(owner="p", channel="a", now=t0, lease=60) is None
    store.retry_failed()  # `worker alerts --retry`
    again = store.claim_notice(owner="p", channel="a", now=t0, lease=60)
    assert again is not None and again.id == first.id and again.attempts == 0
    store.close()
