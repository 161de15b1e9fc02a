"""Waiting on a condition in tests: polled, with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Returns once ``condition()`` is true (awaited when it returns an awaitable);
    TimeoutError after ``timeout`` seconds."""

    async def holds() -> bool:
        result = condition()
        return bool(await result if inspect.isawaitable(result) else result)

    async with asyncio.timeout(timeout):
        while not await holds():
            await asyncio.sleep(0.01)
