"""Issue #11: time zone, message templates (and, below, digests, quiet hours, rate limits)."""

from __future__ import annotations

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
    config = parse_config(
        '[templates]\ntitle = "@tpl/title.j2"\n', tmp_path / "w.toml", check_channels=False
    )
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
        check_channels=False,
    )
    rendering = Rendering.from_config(config)
    assert rendering.message(_delivery()).title == "W Rail strike"
    assert rendering.message(_delivery(watchlist="other")).title == "G Rail strike"


def test_an_unknown_time_zone_is_refused_by_name():
    with pytest.raises(ConfigError) as caught:
        parse_config('timezone = "Europe/Atlantis"\n', check_channels=False)
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
