"""Backups of a running hub, and restoring one into an empty home.

``wothub backup FILE`` asks the running hub (``POST /admin/backup``, an administrator's
credentials, found as the other admin commands find them) for a gzipped tar of:

- ``store/``: a LevelDB copy of a snapshot of the store, taken at one instant while the
  hub keeps serving (the twins' write-behind values are flushed first); in cluster mode
  with the values of the history stream as the ``history`` bucket a single hub has;
- ``certs/`` and ``keys/``: the CA, the server certificate and the token signing key;
- ``wothub.toml`` when the home has one;
- ``wothub-backup.json``: what the file is, when it was made, by which hub.

The store is locked by the hub's process, so only the running hub can read it; it does
the work in a worker thread and never stops serving. ``wothub restore FILE --home DIR``
unpacks a backup into a home that is empty or missing, and refuses any other. The two
commands are in hub/backup_cli.py; this module is what the hub and they share.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bucketstore import BucketStore
from digitwin.history import History
from vocabulary import clock

BACKUP_PATH = "/admin/backup"
MANIFEST = "wothub-backup.json"
FORMAT = 1
_TREES = ("store", "certs", "keys")
_FILES = ("wothub.toml",)
_BATCH = 1000


# -- making one (in the hub) ---------------------------------------------------------------


async def make_backup(
    store: BucketStore, home: Path, *, flush: Callable[[], None], history: History
) -> Path:
    """Write a backup of the running hub (its ``store``, its ``history`` and ``home``) to
    a new temporary file; returns its path (the caller deletes it). ``flush`` writes the
    values kept behind first. The snapshot is taken on the event loop, between two
    messages, so it is consistent; copying and packing run in a worker thread."""
    flush()  # values written behind are in the snapshot too
    items = itertools.chain(store.snapshot(), history.snapshot())
    return await asyncio.to_thread(_pack, items, home, store.backend)


def _pack(items: Iterator[tuple[str, str, bytes]], home: Path, backend: str) -> Path:
    from bucketstore.leveldb import LevelDBStore

    with tempfile.TemporaryDirectory(prefix="wothub-backup-") as work:
        copy = LevelDBStore(Path(work) / "store")
        count = 0
        try:
            count = copy_items(items, copy)
        finally:
            copy.close()
        manifest = {
            "format": FORMAT,
            "created": clock.rfc3339_now(),
            "storeBackend": backend,
            "items": count,
        }
        descriptor, name = tempfile.mkstemp(prefix="wothub-backup-", suffix=".tar.gz")
        os.close(descriptor)
        with tarfile.open(name, "w:gz") as tar:
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(data))
            tar.add(Path(work) / "store", "store")
            for tree in ("certs", "keys"):
                if (home / tree).is_dir():
                    tar.add(home / tree, tree)
            for file in _FILES:
                if (home / file).is_file():
                    tar.add(home / file, file)
        return Path(name)


def copy_items(items: Iterator[tuple[str, str, bytes]], store: Any) -> int:
    """(bucket, key, value) items into ``store``, a batch at a time; how many."""
    count = 0
    batch: list[tuple[str, bytes]] = []
    current: str | None = None
    for bucket, key, value in items:
        if bucket != current or len(batch) >= _BATCH:
            if batch and current is not None:
                store.bucket(current).set_many(batch)
            batch, current = [], bucket
        batch.append((key, value))
        count += 1
    if batch and current is not None:
        store.bucket(current).set_many(batch)
    return count


# -- restoring one ----------------------------------------------------------------------------


class RestoreError(Exception):
    pass


def restore(file: Path, home: Path) -> dict[str, Any]:
    """Unpack the backup ``file`` into ``home`` (missing or empty); returns its manifest."""
    if home.exists() and (not home.is_dir() or any(home.iterdir())):
        raise RestoreError(
            f"{home} is not empty, and restore never overwrites a hub's data; give --home a "
            f"new or empty directory"
        )
    try:
        tar = tarfile.open(file, "r:*")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise RestoreError(
            f"cannot read {file}: {exc.strerror or exc}; give a file `wothub backup` wrote"
        ) from None
    except tarfile.TarError:  # its message lists every compression tried, over lines
        raise RestoreError(
            f"cannot read {file}: it is not a tar file; give a file `wothub backup` wrote"
        ) from None
    try:
        with tar:
            return _unpack(tar, file, home)
    except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:  # truncated, corrupt
        raise RestoreError(
            f"cannot read {file}: {exc}; it is damaged or incomplete, give a whole backup"
        ) from None


def _unpack(tar: tarfile.TarFile, file: Path, home: Path) -> dict[str, Any]:
    members = tar.getmembers()
    names = {m.name for m in members}
    if MANIFEST not in names:
        raise RestoreError(
            f"{file} is not a wothub backup (it has no {MANIFEST}); give a file `wothub "
            f"backup` wrote"
        )
    try:
        manifest = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
    except (ValueError, AttributeError):
        manifest = None
    if not isinstance(manifest, dict):
        raise RestoreError(
            f"{file} is not a wothub backup (its {MANIFEST} is not a JSON object); give a "
            f"file `wothub backup` wrote"
        )
    if manifest.get("format") != FORMAT:
        raise RestoreError(
            f"{file} is a backup in format {manifest.get('format')}, which this wothub "
            f"cannot read; restore it with the wothub that wrote it"
        )
    for member in members:
        _check_member(member, file)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    home.chmod(0o700)
    tar.extractall(home, members=[m for m in members if m.name != MANIFEST], filter="data")
    for tree in _TREES:
        if (home / tree).is_dir():
            (home / tree).chmod(0o700)
    for key in [*home.glob("certs/*.key"), *home.glob("keys/*")]:
        key.chmod(0o600)
    return manifest


def _check_member(member: tarfile.TarInfo, file: Path) -> None:
    path = Path(member.name)
    top = path.parts[0] if path.parts else ""
    if (
        path.is_absolute()
        or ".." in path.parts
        or not (member.isfile() or member.isdir())
        or (top not in _TREES and member.name not in (*_FILES, MANIFEST))
    ):
        raise RestoreError(
            f"{file} has an entry {member.name!r} a wothub backup never has, so nothing was "
            f"restored; give a file `wothub backup` wrote"
        )
