"""The registry of ``wothub`` subcommands. Each command module adds its own with
``add_command(name, help, configure_parser, run)`` when it is imported; ``hub/cli.py``
imports the command modules and builds the parser from ``commands()``. A command module
imports this registry, never the CLI module, so ``hub/`` has no import cycle.

``run(args)`` returns the exit code; a ``ConfigError`` it raises becomes a one-line message
and exit code 2. Subcommands that need the hub's home (to read ``listeners.json``, say)
call ``add_home_arguments`` on their parser and ``config_from_args`` in ``run``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .config import CONFIG_FILE_NAME, FLAG_KEYS, Config, build_config


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


def commands() -> list[Command]:
    """Every registered command, by name (so --help does not depend on import order)."""
    return [_commands[name] for name in sorted(_commands)]


def command(name: str) -> Command:
    return _commands[name]


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


def config_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Config:
    """The configuration, with the flags in ``args`` over ``env`` (default os.environ)."""
    flags = {key: getattr(args, key) for key in FLAG_KEYS if hasattr(args, key)}
    return build_config(flags, os.environ if env is None else env)
