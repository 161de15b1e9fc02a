"""The ``wothub`` command: the parser and ``main``. The subcommands live in their own
modules (``serve_cli``, ``admin_cli``, ``backup_cli``, ``demo``), each of which adds
itself to the registry in ``hub/commands.py`` when imported; this module imports them
and reads the registry. A ``ConfigError`` a command raises becomes a one-line message
and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Importing a command module registers its commands.
from . import (
    admin_cli,  # noqa: F401  (clients, certs, things)
    backup_cli,  # noqa: F401  (backup, restore)
    cluster_cli,  # noqa: F401  (cluster)
    demo,  # noqa: F401  (demo)
    groups_cli,  # noqa: F401  (groups)
    serve_cli,  # noqa: F401  (serve)
)
from .commands import command, commands
from .config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    # No abbreviated flags: --password must not quietly become --password-file.
    parser = argparse.ArgumentParser(
        prog="wothub", description="W3C Web of Things hub", allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=f"wothub {_version()}")
    # Also taken before the command (`wothub --home DIR clients list`); the command's
    # own flag wins when both are given.
    parser.add_argument("--home", dest="before_home", type=Path, metavar="DIR", help="as --home")
    parser.add_argument("--url", dest="before_url", metavar="URL", help="as a command's --url")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for each in commands():
        each.configure_parser(
            subparsers.add_parser(
                each.name, help=each.help, description=each.help, allow_abbrev=False
            )
        )
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wothub")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    for name in ("home", "url"):
        before = getattr(args, f"before_{name}")
        delattr(args, f"before_{name}")
        if before is None:
            continue
        if not hasattr(args, name):
            build_parser().error(
                f"wothub {args.command} does not take --{name}; leave it out, or give it to "
                f"a command that does (see wothub COMMAND --help)"
            )
        if getattr(args, name) is None:
            setattr(args, name, before)
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has already printed
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 2
    try:
        return command(args.command).run(args)
    except ConfigError as exc:
        message = str(exc).replace("\n", " ")
        print(f"wothub: configuration error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
