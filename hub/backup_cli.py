"""``wothub backup FILE`` and ``wothub restore FILE --home DIR`` (hub/backup.py makes and
unpacks the archive)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .admin_cli import EXIT_USAGE, CommandError, add_connection_arguments, run_action
from .backup import BACKUP_PATH, RestoreError, restore
from .commands import add_command


def _configure_backup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", type=Path, help="where to write the backup")
    add_connection_arguments(parser)


async def _download(client: Any, args: argparse.Namespace) -> int:
    target: Path = args.file
    partial = target.with_name(target.name + ".partial")
    try:  # before the download: a backup nobody can write is not worth taking
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # a leftover .partial keeps its mode otherwise
    except OSError as exc:
        raise CommandError(
            f"cannot write {partial}: {exc.strerror or exc}; give a FILE in a directory you "
            f"can write to",
            EXIT_USAGE,
        ) from None
    with os.fdopen(descriptor, "wb") as out:
        try:
            response = await client._send("POST", client._url(BACKUP_PATH), extra_time=600.0)
            out.write(response.raw)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    partial.replace(target)
    print(f"backup written to {target} ({len(response.raw)} bytes)")
    return 0


def _run_backup(args: argparse.Namespace) -> int:
    return run_action(args, _download)


def _configure_restore(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", type=Path, help="a file `wothub backup` wrote")
    parser.add_argument(
        "--home",
        type=Path,
        metavar="DIR",
        required=True,
        help="the new hub's home: must be missing or empty",
    )


def _run_restore(args: argparse.Namespace) -> int:
    try:
        manifest = restore(args.file, args.home)
    except RestoreError as exc:
        print(f"wothub: {exc}", file=sys.stderr)
        return 1
    print(
        f"restored the backup of {manifest.get('created')} into {args.home}; start it "
        f"with `wothub serve --home {args.home}`"
    )
    return 0


add_command(
    "backup",
    "write a backup of the running hub (store, certificates, keys) to FILE",
    _configure_backup,
    _run_backup,
)
add_command("restore", "unpack a backup into a new, empty home", _configure_restore, _run_restore)
