"""The ``wothub`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from bucketstore import BucketStoreError, backend_names

from .config import Config, default_home
from .runtime import serve

log = logging.getLogger("wothub")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wothub", description="W3C Web of Things hub")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the hub until Ctrl-C or SIGTERM")
    run.add_argument(
        "--home",
        type=Path,
        default=None,
        help="directory for the hub's data (env WOTHUB_HOME; default %(default)s)",
    )
    run.add_argument(
        "--store",
        choices=backend_names(),
        default=os.environ.get("WOTHUB_STORE", "leveldb"),
        help="bucket store backend (env WOTHUB_STORE; default %(default)s)",
    )
    run.add_argument(
        "--server-name",
        action="append",
        default=[n for n in os.environ.get("WOTHUB_SERVER_NAMES", "").split(",") if n],
        help="a DNS name or address clients use to reach the hub, for its TLS certificate "
        "(repeatable; env WOTHUB_SERVER_NAMES, comma-separated)",
    )
    run.add_argument(
        "--log-level",
        default=os.environ.get("WOTHUB_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="(env WOTHUB_LOG_LEVEL; default %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = Config(
        home=args.home or default_home(),
        store_backend=args.store,
        log_level=args.log_level,
        server_names=tuple(args.server_name),
    )
    logging.basicConfig(
        level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return serve(config)
    except BucketStoreError as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
