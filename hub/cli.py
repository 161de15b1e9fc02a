"""The ``wothub`` command: ``wothub serve`` here, and any subcommand another module adds.

A module adds a subcommand with ``add_command(name, help, configure_parser, run)``; it must
be imported before ``build_parser()`` runs. ``run(args)`` returns the exit code; a
``ConfigError`` it raises becomes a one-line message and exit code 2. Subcommands that
need the hub's home (to read ``listeners.json``, say) call ``add_home_arguments`` on
their parser and ``config_from_args`` in ``run``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bucketstore import BucketStoreError

from .config import CONFIG_FILE_NAME, FLAG_KEYS, Config, ConfigError, build_config

log = logging.getLogger("wothub")

_DEFAULTS = Config(home=Path("."))


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure_parser: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


_commands: dict[str, Command] = {}


def add_command(
    name: str,
    help: str,
    configure_parser: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
) -> None:
    """Make ``wothub <name>`` a subcommand: ``configure_parser`` adds its arguments to its
    subparser, ``run`` gets the parsed arguments and returns the exit code."""
    if name in _commands:
        raise ValueError(f"wothub command {name!r} is already registered")
    _commands[name] = Command(name, help, configure_parser, run)


def add_home_arguments(parser: argparse.ArgumentParser) -> None:
    """--home and --config, which every subcommand that finds the hub's files needs."""
    parser.add_argument(
        "--home",
        type=Path,
        metavar="DIR",
        help="directory for the hub's data (env WOTHUB_HOME; default $XDG_DATA_HOME/wothub "
        "or ~/.local/share/wothub)",
    )
    parser.add_argument(
        "--config",
        dest="config_file",
        type=Path,
        metavar="FILE",
        help=f"configuration file (default <home>/{CONFIG_FILE_NAME}, read if it exists)",
    )


def _configure_serve(parser: argparse.ArgumentParser) -> None:
    # Every default is None: a flag that is not given leaves the environment, the file
    # and then Config's default to decide. Values are checked by build_config.
    add_home_arguments(parser)
    d = _DEFAULTS
    options: list[tuple[str, str, dict[str, str]]] = [
        ("--store", "store_backend", {"metavar": "BACKEND"}),
        ("--server-name", "server_names", {"metavar": "NAME", "action": "append"}),
        ("--log-level", "log_level", {"metavar": "LEVEL"}),
        ("--log-format", "log_format", {"metavar": "FORMAT"}),
        ("--host", "host", {"metavar": "HOST"}),
        ("--http-host", "http_host", {"metavar": "HOST"}),
        ("--http-port", "http_port", {"metavar": "N"}),
        ("--public-url", "public_url", {"metavar": "URL"}),
        ("--mqtt-port", "mqtt_port", {"metavar": "N"}),
        ("--nats-port", "nats_port", {"metavar": "N"}),
    ]
    helps = {
        "store_backend": f"bucket store backend (env WOTHUB_STORE; file: store; "
        f"default {d.store_backend})",
        "server_names": "a DNS name or address clients use to reach the hub, for its TLS "
        "certificate (repeatable; replaces env WOTHUB_SERVER_NAMES, comma-separated, "
        "and file: server_names)",
        "log_level": "DEBUG, INFO, WARNING or ERROR (env WOTHUB_LOG_LEVEL; file: log_level; "
        f"default {d.log_level})",
        "log_format": "text (human-readable) or json (one object a line) (env "
        f"WOTHUB_LOG_FORMAT; file: log_format; default {d.log_format})",
        "host": "address every listener binds unless it has its own: 0.0.0.0 for every "
        f"interface (env WOTHUB_HOST; file: host; default {d.host}, this machine only)",
        "http_host": "address the HTTPS listener binds (env WOTHUB_HTTP_HOST; file: "
        "[http] host; default: --host)",
        "http_port": f"HTTPS port, 0 for any free one (env WOTHUB_HTTP_PORT; file: "
        f"[http] port; default {d.http_port})",
        "public_url": "base URL clients reach the hub at, used in TD forms (env "
        "WOTHUB_PUBLIC_URL; file: [http] public_url; default https://<host name>:<port>)",
        "mqtt_port": f"MQTT port (env WOTHUB_MQTT_PORT; file: [mqtt] port; default {d.mqtt_port})",
        "nats_port": f"NATS port (env WOTHUB_NATS_PORT; file: [nats] port; default {d.nats_port})",
    }
    for flag, dest, extra in options:
        parser.add_argument(flag, dest=dest, help=helps[dest], **extra)


def _run_serve(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from .logs import setup_logging

    setup_logging(config.log_level, config.log_format)
    if config.config_file is not None:
        log.info("configuration file: %s", config.config_file)
    from .runtime import serve  # here, so other subcommands do not load the whole hub

    try:
        return serve(config)
    except BucketStoreError as exc:
        log.error("%s", exc)
        return 1


add_command("serve", "run the hub until Ctrl-C or SIGTERM", _configure_serve, _run_serve)


def build_parser() -> argparse.ArgumentParser:
    from . import (
        admin_cli,  # noqa: F401  (registers clients, certs and things)
        backup,  # noqa: F401  (registers backup and restore)
        demo,  # noqa: F401  (registers demo)
    )

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
    for command in _commands.values():
        command.configure_parser(
            subparsers.add_parser(
                command.name, help=command.help, description=command.help, allow_abbrev=False
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


def config_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Config:
    """The configuration, with the flags in ``args`` over ``env`` (default os.environ)."""
    flags = {key: getattr(args, key) for key in FLAG_KEYS if hasattr(args, key)}
    return build_config(flags, os.environ if env is None else env)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has already printed
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 2
    try:
        return _commands[args.command].run(args)
    except ConfigError as exc:
        message = str(exc).replace("\n", " ")
        print(f"wothub: configuration error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # Through the module, not this __main__ copy, so subcommands that other modules add
    # with hub.cli.add_command land in the registry main() reads.
    from hub.cli import main as _main

    sys.exit(_main())
