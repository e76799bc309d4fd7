"""Connections kept between sends: one SMTP session and one HTTP keep-alive pool per slot.

A slot is one apprise instance of a channel URL, used by one sending thread at a time (a URL has
a few, so that a few messages to it can be in flight). apprise itself opens a new connection
for every message: for email a new SSL context (~24 ms: the CA store is read again), a new TCP
connection, EHLO, STARTTLS, AUTH, then QUIT; for a webhook a new `requests` session and TCP
connection. Two shims keep apprise's plugins (URL syntax, message building, logging) and
replace only that:

- `SessionSMTP` stands for apprise's `AppriseSMTPController` in its email plugin: the slot
  sending in this thread keeps its SMTP session for the next message (checked with NOOP when it
  has been idle a while, replaced when it broke); TLS uses one SSL context per process. Every
  SMTP error is noted, with the server's reply (`550 5.1.1 ...`), for the send's result.
- `RequestsShim` stands for the `requests` module in the modules of the generic webhook
  plugins (json://, form://, xml://: the ones sent the most; a chat service is paced by apprise
  and keeps its plain `requests` calls): their requests skip requests' per-request machinery
  (~0.7 ms of CPU a request: environment proxies, pool keys, cookie jars) and go through a small
  keep-alive client on http.client (`KeptHTTP`) of the slot, with timeouts capped to the send's
  deadline; unless it is https, a proxy applies to the URL, the request carries files, or the
  answer is a redirect to follow: then the slot's `requests.Session` sends it (keep-alive too;
  cookies refused, as a one-off request keeps none). Anything else (exceptions,
  `requests.codes`) is the real module's.

The thread's current slot and deadline are set by `sending()`; without one (a plugin used
outside a Notifier send) both shims behave as apprise does, bar the shared SSL context.
"""

from __future__ import annotations

import contextlib
import functools
import smtplib
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

SMTP_NOOP_AFTER = 2.0  # seconds idle after which a kept SMTP session is checked with NOOP
# seconds idle after which a kept HTTP connection is checked before reuse (a server closes an
# idle keep-alive connection after seconds, not within one: below that, the check's syscall
# is saved)
HTTP_CHECK_AFTER = 1.0
SESSION_IDLE = 15.0  # seconds unused after which a slot's connections are closed
QUIT_TIMEOUT = 2.0  # seconds for a QUIT at close (the server may be gone)

_state = threading.local()


@contextlib.contextmanager
def sending(slot: Slot, deadline: float) -> Iterator[None]:
    """In this thread, until the block ends: apprise's connections are those of `slot`, and no
    network call outlasts `deadline` (time.monotonic())."""
    _state.slot, _state.deadline, _state.error = slot, deadline, None
    try:
        yield
    finally:
        _state.slot, _state.deadline = None, None


def _current_slot() -> Slot | None:
    return getattr(_state, "slot", None)


def remaining(cap: float) -> float:
    """Seconds left before the current send's deadline, at most `cap` (at least a millisecond:
    a socket timeout of 0 would make it non-blocking)."""
    deadline = getattr(_state, "deadline", None)
    if deadline is None:
        return cap
    return max(0.001, min(cap, deadline - time.monotonic()))


def note_error(text: str) -> None:
    """Note why the current send failed (the last note wins)."""
    _state.error = text


def take_error() -> str | None:
    """The reason noted for the current send, once."""
    error = getattr(_state, "error", None)
    _state.error = None
    return error


class NotingLogger:
    """apprise's logger as one plugin instance sees it (`plugin.logger`): its warnings and
    errors are also noted (note_error) as the reason of the send in this thread. A plugin
    called directly (not through Apprise.notify) returns only True or False: this gives the
    why that AppriseResult.logs() would have held."""

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)

    def _note(self, msg: object, args: tuple[Any, ...]) -> None:
        if _current_slot() is not None:
            try:
                note_error(str(msg) % args if args else str(msg))
            except (TypeError, ValueError):
                note_error(str(msg))

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._note(msg, args)
        self._logger.warning(msg, *args, **kwargs)

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._note(msg, args)
        self._logger.error(msg, *args, **kwargs)

    def critical(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._note(msg, args)
        self._logger.critical(msg, *args, **kwargs)


@functools.cache
def ssl_context(verify: bool) -> ssl.SSLContext:
    """The process's client SSL context (with certificate checks, or without for `verify=no`):
    built once, as the CA store is read at each build."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Slot:
    """One apprise instance of a URL and the connections it keeps; one send at a time."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.plugin = app[0]
        self.direct = isinstance(getattr(self.plugin, "logger", None), NotingLogger)
        self.used = time.monotonic()
        self._smtp: smtplib.SMTP | None = None
        self._smtp_key: tuple[object, ...] | None = None
        self._http: Any = None  # requests.Session, made on first use
        self._kept: KeptHTTP | None = None  # plain-HTTP keep-alive client, made on first use

    @property
    def has_connections(self) -> bool:
        return self._smtp is not None or self._http is not None or self._kept is not None

    def kept_http(self) -> KeptHTTP:
        if self._kept is None:
            self._kept = KeptHTTP()
        return self._kept

    def take_smtp(self, key: tuple[object, ...]) -> smtplib.SMTP | None:
        conn, self._smtp = self._smtp, None
        if conn is not None and self._smtp_key != key:
            _quit(conn)
            return None
        return conn

    def keep_smtp(self, key: tuple[object, ...], conn: smtplib.SMTP) -> None:
        if self._smtp is not None and self._smtp is not conn:
            _quit(self._smtp)
        self._smtp, self._smtp_key = conn, key

    def http_session(self, requests: Any) -> Any:
        if self._http is None:
            from http.cookiejar import DefaultCookiePolicy

            session = requests.Session()
            session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
            self._http = session
        return self._http

    def close(self) -> None:
        """Close the kept connections (QUIT the SMTP session)."""
        conn, self._smtp = self._smtp, None
        if conn is not None:
            _quit(conn)
        http, self._http = self._http, None
        if http is not None:
            with contextlib.suppress(Exception):
                http.close()
        kept, self._kept = self._kept, None
        if kept is not None:
            kept.close()


def _quit(conn: smtplib.SMTP) -> None:
    with contextlib.suppress(Exception):
        if conn.sock is not None:
            conn.sock.settimeout(QUIT_TIMEOUT)
        conn.quit()
    with contextlib.suppress(Exception):
        conn.close()


# --- SMTP ----------------------------------------------------------------------------------------

_SMTP_ERRORS = (OSError, smtplib.SMTPException, RuntimeError, AttributeError)


def _smtp_reply(exc: BaseException) -> str:
    """An SMTP error as the server's reply where there is one: `SMTP 550 5.1.1 no such user`."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(_reply(code, text, rcpt) for rcpt, (code, text) in exc.recipients.items())
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply(exc.smtp_code, exc.smtp_error)
    return f"{type(exc).__name__}: {exc}"


def _reply(code: int, text: bytes | str, recipient: str | None = None) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    where = f" (recipient {recipient})" if recipient else ""
    return f"SMTP {code} {' '.join(text.split())}{where}"


class SessionSMTP:
    """apprise's AppriseSMTPController, with the current slot's session kept open after the
    message (see the module's docstring). Same constructor and methods: `with SessionSMTP(...)
    as smtp: smtp.sendmail(from, to, message) -> bool`; connection and login errors raise."""

    def __init__(
        self,
        host: str,
        port: int,
        secure_mode: str,
        user: str | None = None,
        password: str | None = None,
        verify_certificate: bool = True,
        socket_connect_timeout: float = 15,
        **_ignored: Any,
    ) -> None:
        self.host, self.port, self.secure_mode = host, port, secure_mode
        self.user, self.password = user, password
        self.verify_certificate = verify_certificate
        self.socket_connect_timeout = socket_connect_timeout
        self._key = (host, port, secure_mode, user, password, verify_certificate)
        self._conn: smtplib.SMTP | None = None
        self._broken = False
        self._reused = False  # the session served an earlier message

    def __enter__(self) -> SessionSMTP:
        from apprise.exception import AppriseImproperlyConfigured
        from apprise.plugins.email.smtp import SMTP_SECURE_MODES

        if self.secure_mode not in SMTP_SECURE_MODES:
            raise AppriseImproperlyConfigured(f"Invalid SMTP secure mode: {self.secure_mode!r}")
        slot = _current_slot()
        conn = slot.take_smtp(self._key) if slot is not None else None
        if conn is not None:
            if time.monotonic() - slot.used > SMTP_NOOP_AFTER:  # type: ignore[union-attr]
                try:
                    _timeout(conn, remaining(5.0))
                    alive = conn.noop()[0] == 250
                except _SMTP_ERRORS:
                    alive = False
            else:  # used a moment ago: alive unless the server has closed it (or said 421)
                alive = conn.sock is not None and not _dropped(conn)
            if not alive:
                _quit(conn)
                conn = None
        self._reused = conn is not None
        self._conn = conn if conn is not None else self._open()
        return self

    def _open(self) -> smtplib.SMTP:
        from apprise.plugins.email.smtp import SMTPSecureMode

        tls = self.secure_mode in (SMTPSecureMode.SSL, SMTPSecureMode.STARTTLS)
        context = ssl_context(bool(self.verify_certificate)) if tls else None
        timeout = remaining(float(self.socket_connect_timeout))
        conn: smtplib.SMTP | None = None
        try:
            if self.secure_mode == SMTPSecureMode.SSL:
                conn = smtplib.SMTP_SSL(
                    self.host, self.port, None, timeout=timeout, context=context
                )
            else:
                conn = smtplib.SMTP(self.host, self.port, None, timeout=timeout)
            if self.secure_mode == SMTPSecureMode.STARTTLS:
                _timeout(conn, remaining(float(self.socket_connect_timeout)))
                conn.starttls(context=context)
            if self.user and self.password:
                _timeout(conn, remaining(float(self.socket_connect_timeout)))
                conn.login(self.user, self.password)
        except _SMTP_ERRORS as exc:
            note_error(_smtp_reply(exc))
            if conn is not None:
                _quit(conn)
            raise
        return conn

    def sendmail(self, from_addr: str, to_addrs: list[str], message: str) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            _timeout(conn, remaining(float(self.socket_connect_timeout)))
            try:
                refused = conn.sendmail(from_addr, to_addrs, message)
            except smtplib.SMTPSenderRefused as exc:
                if not (self._reused and exc.smtp_code == 421):
                    raise
                # a kept session the server is closing (e.g. its messages-per-session limit),
                # refused at MAIL FROM: nothing was sent, so a new session sends it
                _quit(conn)
                self._conn = conn = None
                self._reused = False
                self._conn = conn = self._open()
                _timeout(conn, remaining(float(self.socket_connect_timeout)))
                refused = conn.sendmail(from_addr, to_addrs, message)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException) as exc:
            # a reply refusing this message: smtplib has reset the session (closed it on a 421)
            note_error(_smtp_reply(exc))
            self._broken = conn is None or conn.sock is None
            return False
        except _SMTP_ERRORS as exc:
            note_error(_smtp_reply(exc))
            self._broken = True
            return False
        finally:
            if self._conn is None:  # a new session could not be opened
                self._broken = True
        if refused:
            note_error(_smtp_reply(smtplib.SMTPRecipientsRefused(refused)))
            return False
        return True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        slot = _current_slot()
        if slot is not None and exc_type is None and not self._broken and conn.sock is not None:
            slot.keep_smtp(self._key, conn)
        else:
            _quit(conn)


def _timeout(conn: smtplib.SMTP, seconds: float) -> None:
    if conn.sock is None:
        raise smtplib.SMTPServerDisconnected("the SMTP session is closed")
    conn.sock.settimeout(seconds)


@functools.cache
def install_smtp_sessions() -> bool:
    """Make apprise's email plugin use SessionSMTP (once per process); False if its layout is
    not the one known (apprise then opens a session per message, as it always did)."""
    try:
        from apprise.plugins.email import base as email_base
    except ImportError:  # pragma: no cover - another apprise layout
        return False
    if not hasattr(email_base, "AppriseSMTPController"):  # pragma: no cover
        return False
    email_base.AppriseSMTPController = SessionSMTP  # type: ignore[misc, assignment]
    return True


# --- HTTP ----------------------------------------------------------------------------------------


# the generic webhook plugins: their requests go through KeptHTTP when they can, and they are
# called directly (plugin.notify, an API apprise keeps for that), not through Apprise.notify,
# whose dispatch (priorities, retries by tag, result objects) cost ~0.3 ms of CPU a message
KEPT_HTTP_MODULES = frozenset(
    {"apprise.plugins.custom_json", "apprise.plugins.custom_form", "apprise.plugins.custom_xml"}
)


class RequestsShim:
    """The `requests` module as an apprise plugin's module sees it (see the module docstring)."""

    def __init__(self, requests: Any, *, kept: bool = False) -> None:
        self._requests = requests
        self._kept = kept

    def __getattr__(self, name: str) -> Any:
        return getattr(self._requests, name)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        slot = _current_slot()
        if slot is None:
            return getattr(self._requests, name)(*args, **kwargs)
        kwargs["timeout"] = _capped(kwargs.get("timeout"))
        if self._kept and name == "request" and len(args) == 2:
            answer = slot.kept_http().request(self._requests, *args, **kwargs)
            if answer is not None:
                return answer
        return getattr(slot.http_session(self._requests), name)(*args, **kwargs)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("request", *args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("get", *args, **kwargs)

    def options(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("options", *args, **kwargs)

    def head(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("head", *args, **kwargs)

    def post(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("post", *args, **kwargs)

    def put(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("put", *args, **kwargs)

    def patch(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("patch", *args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("delete", *args, **kwargs)


def _capped(timeout: Any) -> Any:
    """A requests timeout (seconds, (connect, read) or None) capped to the send's deadline."""
    far = 1e9
    if isinstance(timeout, tuple) and len(timeout) == 2:
        return tuple(remaining(far if t is None else float(t)) for t in timeout)
    return remaining(far if timeout is None else float(timeout))


_shims: dict[int, RequestsShim] = {}
_shims_lock = threading.Lock()


def direct(plugin: Any) -> bool:
    """Whether to call this plugin directly (see KEPT_HTTP_MODULES): then its logger notes."""
    if type(plugin).__module__ not in KEPT_HTTP_MODULES:
        return False
    plugin.logger = NotingLogger(plugin.logger)
    return True


def route_requests(plugin: Any) -> None:
    """Route the module-level `requests` calls of a generic webhook plugin's module through
    RequestsShim (other plugins are left as they are)."""
    module = sys.modules.get(type(plugin).__module__)
    if module is None or module.__name__ not in KEPT_HTTP_MODULES:
        return
    with _shims_lock:
        real = getattr(module, "requests", None)
        if real is None or isinstance(real, RequestsShim) or not hasattr(real, "Session"):
            return
        module.requests = _shims.setdefault(id(real), RequestsShim(real, kept=True))  # type: ignore[attr-defined]


class KeptResponse:
    """What the generic webhook plugins read of a requests.Response."""

    def __init__(self, status: int, reason: str, headers: Any, content: bytes, url: str) -> None:
        self.status_code, self.reason, self.headers = status, reason, headers
        self.content, self.url = content, url

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        import json

        return json.loads(self.content)


class KeptHTTP:
    """A plain-HTTP keep-alive client for one slot: one connection per host, reused while the
    server keeps it open (checked before reuse, as urllib3 does). `request` answers None when
    it does not take the request (https, a proxy, files, a redirect to follow): requests then
    sends it."""

    def __init__(self) -> None:
        self._conns: dict[tuple[str, int], Any] = {}
        self._used: dict[tuple[str, int], float] = {}
        self._direct: dict[str, bool] = {}  # scheme://host -> no proxy applies

    def close(self) -> None:
        conns, self._conns = self._conns, {}
        for conn in conns.values():
            with contextlib.suppress(Exception):
                conn.close()

    def request(
        self,
        requests: Any,
        method: str,
        url: str,
        *,
        data: Any = None,
        params: Any = None,
        headers: Any = None,
        auth: Any = None,
        timeout: Any = None,
        allow_redirects: bool = True,
        files: Any = None,
        **other: Any,
    ) -> KeptResponse | None:
        import http.client
        from urllib.parse import urlencode, urlsplit

        other.pop("verify", None)  # (plain HTTP: nothing to verify)
        if files or other or not isinstance(data, str | bytes | dict | type(None)):
            return None
        if auth is not None and not (isinstance(auth, tuple) and len(auth) == 2):
            return None
        url = requests.utils.requote_uri(url)
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            return None
        origin = f"http://{parts.netloc}"
        direct = self._direct.get(origin)
        if direct is None:
            direct = self._direct[origin] = not requests.utils.get_environ_proxies(url)
        if not direct:
            return None
        target = parts.path or "/"
        query = parts.query
        if params:
            extra = urlencode(params, doseq=True)
            query = f"{query}&{extra}" if query else extra
        if query:
            target = f"{target}?{query}"
        sent_headers = {"Accept": "*/*", "Accept-Encoding": "identity", "Connection": "keep-alive"}
        sent_headers.update({str(k): str(v) for k, v in (headers or {}).items() if v is not None})
        body: bytes | None
        if isinstance(data, dict):
            body = urlencode(data, doseq=True).encode()
            sent_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        else:
            body = data.encode("utf-8") if isinstance(data, str) else data
        if auth is not None:
            import base64

            pair = f"{auth[0]}:{auth[1]}"
            try:
                raw = pair.encode("latin1")  # as requests does
            except UnicodeEncodeError:
                raw = pair.encode("utf-8")
            sent_headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        key = (parts.hostname, parts.port or 80)
        conn = self._conns.pop(key, None)
        idle = time.monotonic() - self._used.get(key, 0.0)
        if conn is not None and idle > HTTP_CHECK_AFTER and _dropped(conn):
            conn.close()
            conn = None
        try:
            if conn is None:
                conn = http.client.HTTPConnection(key[0], key[1], timeout=connect)
                conn.connect()
                import socket

                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sock.settimeout(read)
            conn.request(method, target, body=body, headers=sent_headers)
            answer = conn.getresponse()
            content = answer.read()
        except TimeoutError as exc:
            if conn is not None:
                conn.close()
            raise requests.exceptions.Timeout(str(exc) or "timed out") from exc
        except (OSError, http.client.HTTPException) as exc:
            if conn is not None:
                conn.close()
            raise requests.exceptions.ConnectionError(f"{type(exc).__name__}: {exc}") from exc
        if answer.will_close:
            conn.close()
        else:
            self._conns[key] = conn
            self._used[key] = time.monotonic()
        if allow_redirects and answer.status in (301, 302, 303, 307, 308):
            return None  # requests follows it (the same request again, then the redirect)
        return KeptResponse(answer.status, answer.reason, answer.headers, content, url)


def _dropped(conn: Any) -> bool:
    """Whether a kept connection was closed by the server (or has unexpected bytes)."""
    import select

    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
