"""Channels: apprise URLs checked, masked, and sent to, one apprise.Apprise per URL.

Throughput: each URL has a few apprise instances of its own (slots, up to SENDS_PER_URL), so
that a few messages to it can be in flight, each slot keeping its connections between sends
(an SMTP session, HTTP keep-alive: worker.notify.sessions). A service apprise paces (most chat
services) gets one slot: its messages go one at a time, at apprise's pace.

Secrets: a URL is only ever shown as apprise's `url(privacy=True)`. apprise itself logs raw URLs
in a few places (an unparseable URL at ERROR, request URLs with tokens at DEBUG), so a filter on
the `apprise` and `urllib3` loggers drops apprise's records while a URL is being parsed here and
masks the secret parts of every loaded URL (the fields apprise marks private) in whatever they
log while sending. Error texts returned in SendResult go through the same masking.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import re
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from worker.notify import sessions
from worker.notify.render import Message, escape_html, escape_markdown

if TYPE_CHECKING:
    import apprise

log = logging.getLogger(__name__)

EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})
CONSOLE_SCHEME = "console"
MAX_SEND_INTERVAL = 1.0  # seconds between two sends to one chat URL, at most
SENDS_PER_URL = 4  # messages in flight to one URL at most (one slot each), unless apprise paces it
ERROR_MAX = 300

_SCHEME_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]{0,31})://")


# --- secret masking in logs --------------------------------------------------------------------

_quiet_var: contextvars.ContextVar[bool] = contextvars.ContextVar("notify_quiet", default=False)
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secrets_re: re.Pattern[str] | None = None
_MASK = "****"


def _secret_values(url: str, plugin: Any) -> set[str]:
    """The secret parts of a URL: the fields apprise's plugin marks private (passwords, tokens,
    API keys), as read back from the plugin, and the URL's password."""
    values: list[Any] = []
    for group in ("template_tokens", "template_args"):
        for key, spec in (getattr(plugin, group, None) or {}).items():
            if isinstance(spec, dict) and spec.get("private"):
                values.append(getattr(plugin, spec.get("map_to", key), None))
    try:
        values.append(urlsplit(url).password)
    except ValueError:
        pass
    found: set[str] = set()
    for value in values:
        items = value if isinstance(value, list | tuple | set) else [value]
        for item in items:
            if isinstance(item, str) and len(item) >= 3:
                found.update({item, quote(item, safe=""), unquote(item)})
    return {v for v in found if len(v) >= 3}


def _remember_secrets(found: set[str]) -> None:
    global _secrets_re
    with _secrets_lock:
        if found - _secrets:
            _secrets.update(found)
            ordered = sorted(_secrets, key=len, reverse=True)
            _secrets_re = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """`text` with every secret of the channels loaded so far replaced by ****."""
    pattern = _secrets_re
    return pattern.sub(_MASK, text) if pattern is not None else text


class _RedactingFilter(logging.Filter):
    """On apprise's (and urllib3's) loggers: drop records while a URL is parsed here (apprise
    logs a refused URL whole), mask channel secrets in every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _quiet_var.get():
            return False
        if _secrets_re is not None:
            message = record.getMessage()
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, None
        return True


_FILTER = _RedactingFilter()
for _name in ("apprise", "urllib3.connectionpool", "urllib3.connection", "requests"):
    logging.getLogger(_name).addFilter(_FILTER)


@contextmanager
def _quiet() -> Iterator[None]:
    token = _quiet_var.set(True)
    try:
        yield
    finally:
        _quiet_var.reset(token)


# --- URLs -------------------------------------------------------------------------------------


def _scheme(url: str) -> str | None:
    match = _SCHEME_RE.match(url)
    return match.group(1).lower() if match else None


# The Message-ID of the email this (notify) thread is sending: apprise makes one with
# email.utils.make_msgid for each message it builds; ours replaces it while we send.
_message_ids = threading.local()


def _install_message_ids() -> None:
    """Make apprise's email plugin use the Message-ID of the alert being sent (see render)."""
    try:
        from apprise.plugins.email import base as email_base
    except ImportError:  # pragma: no cover - another apprise layout: its own Message-IDs
        return
    original = getattr(email_base, "make_msgid", None)
    if original is None or getattr(original, "_worker", False):  # pragma: no cover
        return

    def make_msgid(*args: Any, **kwargs: Any) -> str:
        wanted = getattr(_message_ids, "value", None)
        return wanted if wanted else original(*args, **kwargs)

    make_msgid._worker = True  # type: ignore[attr-defined]
    email_base.make_msgid = make_msgid


@functools.cache
def _apprise() -> ModuleType:
    """apprise, imported on first use (with its plugin scan it costs ~0.4 s of start-up, which a
    `worker once` that has no alert to send should not pay), with `console://` registered."""
    import apprise

    _register_console()
    _install_message_ids()
    sessions.install_smtp_sessions()
    return apprise


def _asset() -> apprise.AppriseAsset:
    """apprise 2.x runs a service with a deadline in its own shared pool (a few threads for the
    whole process): with service_timeout=0 it runs in the calling thread, one of the Notifier's
    own, and the deadline is ours."""
    apprise_ = _apprise()
    try:
        return apprise_.AppriseAsset(service_timeout=0)
    except TypeError:  # apprise 1.x: no such setting, it always runs in the calling thread
        return apprise_.AppriseAsset()


def _load(url: str, asset: apprise.AppriseAsset | None = None) -> apprise.Apprise | None:
    app = _apprise().Apprise(asset=asset)
    with _quiet():
        try:
            added = app.add(url)
        except Exception:  # apprise may raise on odd input; refusing the URL is the answer
            return None
    return app if added and len(app) == 1 else None


def check_url(url: str) -> str | None:
    """None when apprise accepts `url`, else a one-line error naming the scheme only."""
    if not isinstance(url, str) or not url.strip():
        return "not a URL apprise accepts: empty"
    if _load(url) is not None:
        return None
    scheme = _scheme(url)
    several = _apprise().Apprise()
    with _quiet():
        if several.add(url) and len(several) > 1:
            return f"{len(several)} URLs in one string: give a channel a list of URLs instead"
    if scheme is None:
        return "not a URL apprise accepts: it has no scheme:// (e.g. mailtos://, tgram://)"
    if not _known(scheme):
        return f"not a URL apprise accepts: {scheme}://... (unknown scheme)"
    return f"not a URL apprise accepts: {scheme}://... (incomplete or malformed for this service)"


def check_channel_urls(channels: dict[str, list[str]]) -> list[str]:
    """Every channel URL must be one apprise accepts (`Apprise.add()` returns False otherwise):
    one problem per refused URL, naming its key. The config stage's `check_channels`."""

    problems = []
    for name, urls in channels.items():
        for i, url in enumerate(urls):
            error = check_url(url)
            if error:
                key = f"channels.{name}" + (f"[{i}]" if len(urls) > 1 else "")
                problems.append(f"{key}: {error}")
    return problems


def _known(scheme: str) -> bool:
    from apprise.plugins import N_MGR

    _apprise()
    return scheme in N_MGR


# --- sending ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    done: tuple[int, ...]  # indexes of the channel's URLs that have now received it
    error: str | None  # masked, short


class _Target:
    """One channel URL: how it is shown and sent, and its slots (apprise instances of it, each
    used by one sending thread at a time, with the connections it keeps)."""

    def __init__(
        self,
        url: str,
        app: apprise.Apprise,
        *,
        timeout: float,
        masked: str,
        kind: str,  # "email", "console" or "chat"
        title_in_body: bool,  # the service has no title field: apprise puts it in the body
        body_format: str = "markdown",  # what we send it: "html", "markdown" or "text"
        window: int = 1,  # slots at most: messages in flight to this URL
    ) -> None:
        self.url, self.timeout = url, timeout
        self.masked, self.kind = masked, kind
        self.title_in_body, self.body_format = title_in_body, body_format
        self.window = window
        self._idle = [sessions.Slot(app)]  # the last one used on top: its connections are warm
        self._made = 1
        self._cond = threading.Condition()

    def acquire(self, deadline: float) -> sessions.Slot | None:
        """A free slot (a new one while fewer than `window` exist); None at the deadline."""
        with self._cond:
            while not self._idle:
                if self._made < self.window:
                    self._made += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            else:
                return self._idle.pop()
        try:
            app = _load(self.url, _asset())
            if app is None:  # pragma: no cover - it loaded a moment ago
                raise ValueError("apprise refused the URL it took before")
            _prepare(app[0], self.kind, _scheme(self.url) or "", self.timeout)
        except BaseException:
            with self._cond:
                self._made -= 1
                self._cond.notify()
            raise
        return sessions.Slot(app)

    def release(self, slot: sessions.Slot) -> None:
        slot.used = time.monotonic()
        with self._cond:
            self._idle.append(slot)
            self._cond.notify()

    def close_idle(self, older_than: float | None = None) -> bool:
        """Close the connections of the free slots unused for `older_than` seconds (all free
        slots when None); whether some connection is still open afterwards."""
        now = time.monotonic()
        with self._cond:  # taken out while they are closed: no send can pick them meanwhile
            old = [s for s in self._idle if older_than is None or now - s.used >= older_than]
            self._idle = [s for s in self._idle if s not in old]
            left_open = any(s.has_connections for s in self._idle)
        for slot in old:
            slot.close()
        with self._cond:
            self._idle[:0] = old  # at the bottom: the warm ones are used first
            self._cond.notify_all()
        return left_open


def body_format_for(kind: str, formats: Sequence[str]) -> str:
    """The body format to send a service, from the formats its apprise plugin declares (its
    `notify_format`, the first being its default): HTML for email, plain text for the console;
    Markdown for a chat service that takes it, except a generic endpoint that takes every
    format alike (json://, form://, xml://), which gets its default; else the one it takes."""
    if kind == "email":
        return "html"
    if kind == "console" or not formats:
        return "text"
    if "markdown" in formats and not {"text", "html", "markdown"} <= set(formats):
        return "markdown"
    return formats[0] if formats[0] in ("text", "markdown", "html") else "text"


def _declared_formats(plugin: Any) -> list[str]:
    declared = getattr(plugin, "notify_format", None)
    items = declared if isinstance(declared, list | tuple | set) else [declared]
    return [str(getattr(f, "value", f)).lower() for f in items if f is not None]


def _target(url: str, timeout: float) -> _Target | None:
    app = _load(url, _asset())
    if app is None:
        return None
    plugin = app[0]
    masked = plugin.url(privacy=True)
    _remember_secrets(_secret_values(url, plugin))
    scheme = _scheme(url) or ""
    kind = "email" if scheme in EMAIL_SCHEMES else "console" if scheme == CONSOLE_SCHEME else "chat"
    _prepare(plugin, kind, scheme, timeout)
    paced = float(getattr(plugin, "request_rate_per_sec", 0) or 0) > 0
    return _Target(
        url,
        app,
        timeout=timeout,
        masked=masked,
        kind=kind,
        title_in_body=plugin.title_maxlen <= 0,
        body_format=body_format_for(kind, _declared_formats(plugin)),
        window=1 if paced or kind == "console" else SENDS_PER_URL,
    )


def _prepare(plugin: Any, kind: str, scheme: str, timeout: float) -> None:
    """Set up one apprise instance of a channel URL for sending alerts."""
    # apprise's own socket timeouts stay inside our deadline, so its threads end soon after
    for attr in ("socket_connect_timeout", "socket_read_timeout"):
        current = getattr(plugin, attr, None)
        if isinstance(current, int | float) and current > timeout:
            setattr(plugin, attr, timeout)
    # apprise waits request_rate_per_sec seconds between two sends to one URL (5.5 s for
    # email): a burst of 20 alerts would take minutes. Email and the console need no pause;
    # chat services keep their own pace, capped at MAX_SEND_INTERVAL.
    current = float(getattr(plugin, "request_rate_per_sec", 0) or 0)
    plugin.request_rate_per_sec = 0 if kind != "chat" else min(current, MAX_SEND_INTERVAL)
    if kind == "chat":
        sessions.route_requests(plugin)  # a generic webhook: HTTP keep-alive per slot
        sessions.direct(plugin)  # a generic webhook: called directly
    if scheme in DISCORD_SCHEMES:
        _no_discord_mentions(plugin)


DISCORD_SCHEMES = frozenset({"discord"})


def _no_discord_mentions(plugin: Any) -> None:
    """Every Discord webhook post carries `allowed_mentions: {"parse": []}`: Discord then pings
    nobody, whatever the text holds (its default parses @everyone, @here, users and roles)."""
    send = getattr(plugin, "_send", None)
    if send is None or getattr(send, "_worker_no_mentions", False):  # pragma: no cover
        return

    def send_without_mentions(payload: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(payload, dict):
            payload.pop("allow_mentions", None)
            payload["allowed_mentions"] = {"parse": []}
        return send(payload, *args, **kwargs)

    send_without_mentions._worker_no_mentions = True  # type: ignore[attr-defined]
    plugin._send = send_without_mentions


def _short(text: str) -> str:
    text = " ".join(redact(text).split())
    return text if len(text) <= ERROR_MAX else text[: ERROR_MAX - 1] + "…"


def _send_blocking(target: _Target, message: Message, deadline: float) -> str | None:
    """Send through apprise in this (worker) thread, on a free slot of the URL; None on
    success, else the reason."""
    slot = target.acquire(deadline)
    if slot is None:  # its slots are all held by sends that outlived their deadline
        return "timed out waiting for a free connection"
    try:
        with sessions.sending(slot, deadline):
            error = _send_on(slot, target, message)
            noted = sessions.take_error()
    finally:
        target.release(slot)
    if error is not None and noted is not None and target.kind == "email":
        return _short(noted)  # the SMTP server's reply, not apprise's "Sending email failed"
    return error


def _send_on(slot: sessions.Slot, target: _Target, message: Message) -> str | None:
    from apprise.common import NotifyFormat

    if target.kind == "email":
        body, fmt, title = message.html, NotifyFormat.HTML, message.title
        if target.title_in_body:
            title = escape_html(title)
        _message_ids.value = message.message_id
    elif target.kind == "console":
        body, fmt, title = message.text, NotifyFormat.TEXT, message.title
    elif target.body_format == "markdown":
        body, fmt, title = message.markdown, NotifyFormat.MARKDOWN, message.chat_title
        if target.title_in_body:  # apprise makes it a Markdown heading: escape it
            title = escape_markdown(title)
    elif target.body_format == "html":
        body, fmt, title = message.html, NotifyFormat.HTML, message.chat_title
        if target.title_in_body:
            title = escape_html(title)
    else:
        body, fmt, title = message.chat_text, NotifyFormat.TEXT, message.chat_title
    try:
        if slot.direct:
            if slot.plugin.notify(body=body, title=title, body_format=fmt):
                return None
            return _short(sessions.take_error() or "apprise reported a failure")
        result = slot.app.notify(body=body, title=title, body_format=fmt)
    except Exception as exc:  # a plugin bug must fail this URL, not the caller
        return f"{type(exc).__name__}: {_short(str(exc))}"
    finally:
        _message_ids.value = None
    if result:
        return None
    reasons = [
        entry.message
        for entry in (result.logs() if hasattr(result, "logs") else ())
        if getattr(entry, "level", "") in ("WARNING", "ERROR", "CRITICAL")
    ]
    status = getattr(getattr(result, "status", None), "name", None)
    if reasons:
        return _short(reasons[-1])
    return f"apprise reported {status.lower() if status else 'a failure'}"


class Notifier:
    """The configured channels, each a list of apprise URLs; sends one message to a channel."""

    def __init__(self, channels: Mapping[str, Sequence[str]], *, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._targets: dict[str, list[_Target]] = {}
        self._executor: ThreadPoolExecutor | None = None
        for name, urls in channels.items():
            targets = []
            for i, url in enumerate(urls):
                target = _target(url, timeout)
                if target is None:
                    problem = check_url(url) or "not a URL apprise accepts"
                    raise ValueError(f"channel {name!r}, URL [{i}]: {problem}")
                targets.append(target)
            self._targets[name] = targets
        # apprise is synchronous: each send runs in a thread of this pool, not asyncio's default
        # one (a few threads, shared with the store calls), so that URLs hanging until their
        # socket timeouts cannot hold up other channels' sends nor the store. Two threads per
        # slot: a send abandoned at the deadline may still hold one when the next round starts.
        slots = sum(t.window for targets in self._targets.values() for t in targets)
        self._executor = ThreadPoolExecutor(
            max_workers=min(128, max(4, 2 * slots)), thread_name_prefix="notify"
        )
        self._reaper: asyncio.TimerHandle | None = None

    def close(self) -> None:
        """Let the sending threads end (sends still running finish in the background) and close
        the connections kept (in a thread of its own: a QUIT may wait on a gone server)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        targets = [t for targets in self._targets.values() for t in targets]
        threading.Thread(
            target=lambda: [t.close_idle() for t in targets], name="notify-close", daemon=True
        ).start()

    def _reap_later(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the connections unused for SESSION_IDLE seconds, that long after a send."""
        if self._reaper is None:
            self._reaper = loop.call_later(sessions.SESSION_IDLE, self._reap, loop)

    def _reap(self, loop: asyncio.AbstractEventLoop) -> None:
        self._reaper = None
        targets = [t for targets in self._targets.values() for t in targets]

        def close_idle() -> None:
            if any([t.close_idle(sessions.SESSION_IDLE) for t in targets]) and not loop.is_closed():
                loop.call_soon_threadsafe(self._reap_later, loop)  # some were in use: again

        assert self._executor is not None
        try:
            self._executor.submit(close_idle)
        except RuntimeError:  # closed
            pass

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self._targets)

    def body_formats(self, channel: str) -> list[str]:
        """The body format each of the channel's URLs is sent: "html", "markdown" or "text"."""
        return [t.body_format if t.kind == "chat" else t.kind for t in self._targets[channel]]

    def describe(self, channel: str) -> list[str]:
        """The channel's URLs as apprise's privacy-masked form."""
        return [t.masked for t in self._targets[channel]]

    async def send(
        self, channel: str, message: Message, *, skip: Collection[int] = ()
    ) -> SendResult:
        """Send to every URL of `channel` not in `skip`, all at once, under one deadline."""
        targets = self._targets.get(channel)
        if targets is None:
            return SendResult(False, tuple(sorted(skip)), f"unknown channel {channel!r}")
        done = {i for i in skip if 0 <= i < len(targets)}
        todo = [i for i in range(len(targets)) if i not in done]
        if not todo:
            return SendResult(True, tuple(sorted(done)), None)
        loop = asyncio.get_running_loop()
        assert self._executor is not None
        started = time.monotonic()
        deadline = started + self.timeout
        tasks = {
            i: asyncio.ensure_future(
                loop.run_in_executor(self._executor, _send_blocking, targets[i], message, deadline)
            )
            for i in todo
        }
        self._reap_later(loop)
        errors: list[str] = []
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.wait(tasks.values())
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            for task in tasks.values():
                task.cancel()
            raise
        for i, task in tasks.items():
            where = targets[i].masked.partition("?")[0]  # the URL as apprise masks it
            if not task.done():
                task.cancel()  # the thread runs on to its socket timeouts (capped); ignored
                errors.append(f"{where}: timed out after {time.monotonic() - started:.0f}s")
            elif task.cancelled():
                errors.append(f"{where}: cancelled")
            elif (exc := task.exception()) is not None:
                errors.append(f"{where}: {type(exc).__name__}")
            elif (reason := task.result()) is not None:
                errors.append(f"{where}: {reason}")
            else:
                done.add(i)
        if errors:
            for line in errors:
                log.debug("channel %s: %s", channel, line)
            return SendResult(False, tuple(sorted(done)), _short("; ".join(errors)))
        return SendResult(True, tuple(sorted(done)), None)


# --- console:// --------------------------------------------------------------------------------


_console_lock = threading.Lock()


def _register_console() -> None:
    """Register the `console://` schema with apprise (once per process)."""
    from apprise.decorators import notify
    from apprise.plugins import N_MGR

    with _console_lock:
        if CONSOLE_SCHEME in N_MGR:
            return

        @notify(on=CONSOLE_SCHEME, name="Console (standard output)")
        def _console(body: str, title: str, *args: object, **kwargs: object) -> bool:
            rule = "-" * 72
            print(f"{rule}\n{title}\n\n{body}\n{rule}", flush=True)
            return True
