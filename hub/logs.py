"""The hub's logs: human-readable lines by default, JSON lines with ``--log-format json``.

A JSON line has ``time``, ``level``, ``logger`` and ``message``, and, when the record was
made while the router handled a message, ``clientID``, ``binding``, ``operation``,
``thingID`` and ``correlationID``. The router sets that context once per message
(``core.log_context``: the connection and the message, nothing built unless a line is
written); a record's own ``extra=`` fields of those names win.

Secrets are never logged: nothing in the hub logs a password, a token or a request
body, and as a second line of defence every formatter masks what looks like one
(``Bearer <token>``, ``Basic <credentials>``, ``"password": ...``, JWTs).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import orjson

from core.log_context import current
from vocabulary import clock

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_FIELDS = ("clientID", "binding", "operation", "thingID", "correlationID")

_SECRETS = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "***"),
    (
        re.compile(
            r"""(?i)(["']?(?:password|token|refreshToken|secret)["']?\s*[:=]\s*)("[^"]*"|'[^']*'|\S+)"""
        ),
        r"\1***",
    ),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def context_fields() -> dict[str, Any]:
    """The fields of the message the router is handling now, if any."""
    handled = current.get()
    if handled is None:
        return {}
    connection, message = handled
    fields = {
        "clientID": connection.client.id,
        "binding": connection.binding,
        "operation": message.operation,
        "thingID": message.thing_id,
        "correlationID": message.correlation_id,
    }
    return {key: value for key, value in fields.items() if value is not None}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": clock.rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        line.update(context_fields())
        for key in _FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# Libraries whose INFO lines are their own workings, not the hub's: an access line per
# request (the dashboard polls), uvicorn's start-up steps. They
# log at WARNING and above unless the hub runs at DEBUG.
CHATTY_LIBRARIES = ("uvicorn.access", "uvicorn.error")


class _SslEofNoise(logging.Filter):
    """asyncio warns that ``eof_received`` returning true has no effect under TLS, once
    per TLS connection closed by the peer: it is about asyncio's internals, not a fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received() has no effect when using ssl" not in record.getMessage()


_EOF_NOISE = _SslEofNoise()


def setup_logging(level: str, log_format: str = "text") -> None:
    """Log to standard error at ``level`` in ``log_format`` (text or json); like
    logging.basicConfig, nothing changes when the root logger has handlers already."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    quiet = logging.getLevelName(level) > logging.DEBUG
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)
    logging.getLogger("asyncio").addFilter(_EOF_NOISE)
