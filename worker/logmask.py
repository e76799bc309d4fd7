"""Secrets kept out of every log line: a filter on the log handler (all loggers, ours and third
parties') that masks channel secrets, values put in from the environment and URL credentials.

- channel secrets: the fields apprise marks private in each loaded channel URL (passwords,
  tokens, webhook ids), as `worker.notify.redact` knows them;
- every `${VAR}` value the config expanded that is at least EXPANDED_MIN characters long (a
  value from the environment is taken for a secret: that is where the README puts them);
- `scheme://user:password@` in any text.

Third-party loggers that write request lines (urllib3 and requests under apprise, httpx,
httpcore) are kept at WARNING even with `-v` (see `quiet_third_parties`).
"""

from __future__ import annotations

import logging
import re

from worker.config import expanded_values
from worker.notify import redact

MASK = "****"
EXPANDED_MIN = 6  # shorter environment values ("15m", "INFO") are not taken for secrets
_CREDENTIALS_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@'\"<>]*@")
THIRD_PARTY = ("httpx", "httpcore", "urllib3", "requests", "apprise", "hpack", "watchfiles")


def mask(text: str) -> str:
    """`text` with every known secret and URL credentials replaced by ****."""
    text = redact(text)
    for value in expanded_values():
        if len(value) >= EXPANDED_MIN and value in text:
            text = text.replace(value, MASK)
    return _CREDENTIALS_RE.sub(rf"\1{MASK}@", text)


class MaskingFilter(logging.Filter):
    """Put on a handler: masks the message and any traceback of every record it writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = mask(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        return True


def quiet_third_parties(root_level: int) -> None:
    """Libraries that log request lines (with tokens in webhook paths and queries) at DEBUG or
    INFO log warnings and errors only, whatever our level."""
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root_level))
