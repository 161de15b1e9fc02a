"""Start the hub's parts, wait for a stop signal, stop them in reverse order."""

from __future__ import annotations

import asyncio
import logging
import signal

from bucketstore import BucketStore, open_store

from .config import Config

log = logging.getLogger("wothub")


async def _run_until_signal(config: Config, store: BucketStore) -> None:
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[str] = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda s=sig: stopped.done() or stopped.set_result(s.name))
    # Logged only once the handlers are in place, so "started" means "stoppable".
    log.info(
        "wothub started: %s store at %s (%d buckets); press Ctrl-C to stop",
        config.store_backend,
        config.store_path,
        len(store.buckets()),
    )
    log.info("received %s, stopping", await stopped)


def serve(config: Config) -> int:
    """Run until SIGINT or SIGTERM; return the process exit code."""
    store = open_store(config.store_path, config.store_backend)
    try:
        asyncio.run(_run_until_signal(config, store))
    finally:
        store.close()
    log.info("wothub stopped")
    return 0
