"""Logging setup: one line per record on standard error, as text or as JSON.

- `text` (the default): `2026-12-01 10:00:00,123 INFO worker.pipeline: pass source=...`. Under
  systemd's journal (`$JOURNAL_STREAM` names the stream standard error is), the time is left
  out, since journald stamps every line itself, and each line starts with its syslog priority
  (`<4>` for a warning), which journald reads into the record's priority (`journalctl -p`).
- `json`: one object a line with `time` (ISO 8601, UTC), `level`, `logger`, `message`, every
  field a call passed in `extra=` (a pass line's `source`, `pages`, `new`...; a delivery's
  `watchlist`, `channel`, `attempt`...) as its own key, and `exception` with the traceback.

A progress line on a terminal (worker.progress) is cleared before each record is written, so a
log line never lands in the middle of it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from worker.progress import STATUS_LINE

LogFormat = Literal["text", "json"]

NOISY = ("httpx", "httpcore", "apscheduler", "alembic", "apprise", "watchfiles")

# what every LogRecord has: anything else on a record came from `extra=`
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# syslog priorities, which journald reads from a "<N>" prefix (SyslogLevelPrefix=yes)
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}


def under_journald(stream: Any = None) -> bool:
    """Whether `stream` (default: standard error) is the journal stream systemd connected.

    systemd sets `JOURNAL_STREAM=DEVICE:INODE` for a service whose output goes to the journal;
    it is only ours when it names the file standard error is now (not a redirect of it, nor a
    variable inherited by a child whose output goes elsewhere), as sd_journal_stream_fd(3) says.
    """
    value = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat((stream if stream is not None else sys.stderr).fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a log call passed in `extra=`."""
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the `extra=` fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            data.setdefault(key, value)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class JournalFormatter(logging.Formatter):
    """Text without the time (journald stamps each line), led by the syslog priority."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 2 if record.levelno > logging.ERROR else 7)
        # a traceback continues on the next lines: each gets the prefix, or journald would
        # file them at the default priority
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def formatter_for(fmt: LogFormat) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if under_journald():
        return JournalFormatter()
    return logging.Formatter(TEXT_FORMAT)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever sys.stderr is at the time of the record (tests swap it), after
    clearing a progress line that may be showing there."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        STATUS_LINE.clear()
        super().emit(record)


def setup_logging(
    level: str, *, fmt: LogFormat = "text", verbose: bool = False, quiet: bool = False
) -> None:
    """Configure logging (again): one record a line on standard error, as `fmt`."""
    if verbose:
        level = "DEBUG"
    elif quiet:
        level = "WARNING"
    from worker.logmask import MaskingFilter, quiet_third_parties

    handler = StderrHandler()
    handler.setFormatter(formatter_for(fmt))
    handler.addFilter(MaskingFilter())  # secrets never reach the log, whoever logs them
    STATUS_LINE.enabled = fmt == "text" and not quiet
    logging.basicConfig(level=level, handlers=[handler], force=True)
    quiet_third_parties(logging.getLogger().level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def set_format(fmt: LogFormat) -> None:
    """Switch the format of the handlers `setup_logging` installed (a config reload)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, StderrHandler):
            handler.setFormatter(formatter_for(fmt))
    STATUS_LINE.enabled = STATUS_LINE.enabled and fmt == "text"
