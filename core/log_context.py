"""The message the router is handling now, for the log lines written meanwhile.

One context variable holding (connection, message), set once per message by
``Router.handle``: nothing is built unless a line is written (hub/logs.py reads it).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

current: ContextVar[tuple[Any, Any] | None] = ContextVar("wothub_message", default=None)
