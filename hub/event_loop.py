"""The event loop ``wothub serve`` runs on: uvloop where it is installed (it is a
dependency on the platforms it supports), asyncio's own otherwise or when asked.

uvloop is a drop-in asyncio loop written in C on libuv; the hub's time per message is
mostly its own Python, so the gain is modest (docs/performance.md), but it comes free.
``event_loop = "asyncio"`` (env WOTHUB_EVENT_LOOP, flag --event-loop) turns it off, e.g.
to rule it out when chasing a problem.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

EVENT_LOOPS = ("auto", "uvloop", "asyncio")
T = TypeVar("T")


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def chosen(setting: str) -> str:
    """``uvloop`` or ``asyncio`` for a setting of EVENT_LOOPS; RuntimeError when uvloop
    is asked for and not installed."""
    if setting == "asyncio":
        return "asyncio"
    if uvloop_available():
        return "uvloop"
    if setting == "uvloop":
        raise RuntimeError("event_loop = uvloop, but uvloop is not installed")
    return "asyncio"


def run(main: Coroutine[Any, Any, T], setting: str = "auto") -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    loop = chosen(setting)
    log.info("event loop: %s", loop)
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
