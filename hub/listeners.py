"""``<home>/listeners.json``: where a running hub listens, for clients on the same machine.

The hub writes it once its listeners are up (the actual ports, also when port 0 picked a
free one) and removes it when it stops cleanly. The admin commands read it to find the
hub. After a crash the file stays behind; ``is_running`` tells whether its process is
still there::

    {"pid": 4242, "started": "2026-11-23T10:15:30.123Z",
     "listeners": {"https": {"host": "0.0.0.0", "port": 8444,
                             "url": "https://hub.lan:8444",
                             "local_url": "https://127.0.0.1:8444"}}}

``url`` is what remote clients use (the public URL); ``local_url`` is the one for clients
on this machine: a listener bound to every interface is reached on loopback, an address
the hub's certificate names (``0.0.0.0`` is no address a client can verify).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from vocabulary.clock import rfc3339_now

LISTENERS_FILE = "listeners.json"

log = logging.getLogger("wothub")


# Wildcard listen addresses, and the loopback address a local client reaches each on.
_LOOPBACK_OF = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]"}


def local_url(url: str) -> str:
    """``url`` with a wildcard host (``0.0.0.0``, ``::``) as loopback, else unchanged."""
    parts = urlsplit(url)
    loopback = _LOOPBACK_OF.get(parts.hostname or "")
    if loopback is None:
        return url
    netloc = f"{loopback}:{parts.port}" if parts.port else loopback
    return urlunsplit(parts._replace(netloc=netloc))


def listeners_path(home: Path, worker: int = 0) -> Path:
    """The hub's file; worker ``i`` of ``wothub serve --workers`` writes its own
    ``listeners-w<i>.json`` (the parent writes ``listeners.json`` for them all)."""
    if worker:
        return Path(home) / f"listeners-w{worker}.json"
    return Path(home) / LISTENERS_FILE


def write_listeners(
    home: Path,
    listeners: Mapping[str, Mapping[str, Any]],
    *,
    pid: int | None = None,
    started: str | None = None,
    worker: int = 0,
) -> Path:
    """Write the file atomically (a temporary file renamed into place, mode 0644) and
    return its path. ``pid`` defaults to this process; ``started`` (RFC 3339) to the time
    in the file this process wrote before, else now, so rewriting it when a listener is
    added keeps the start time."""
    path = listeners_path(home, worker)
    pid = os.getpid() if pid is None else pid
    if started is None:
        previous = read_listeners(home, worker)
        if previous and previous.get("pid") == pid and isinstance(previous.get("started"), str):
            started = previous["started"]
        else:
            started = rfc3339_now()
    document = {
        "pid": pid,
        "started": started,
        "listeners": {name: _with_local_url(listener) for name, listener in listeners.items()},
    }
    data = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{LISTENERS_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o644)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


def _with_local_url(listener: Mapping[str, Any]) -> dict[str, Any]:
    """The listener with ``local_url``: its own, or ``url`` on the bound host and port."""
    out = dict(listener)
    url, host, port = out.get("url"), out.get("host"), out.get("port")
    if "local_url" in out:
        out["local_url"] = local_url(out["local_url"])
    elif isinstance(url, str) and isinstance(host, str) and isinstance(port, int):
        bound = f"[{host}]" if ":" in host else host
        out["local_url"] = local_url(f"{urlsplit(url).scheme}://{bound}:{port}")
    return out


def read_listeners(home: Path, worker: int = 0) -> dict[str, Any] | None:
    """What the file says, or None when there is no file or it is not a listeners file."""
    path = listeners_path(home, worker)
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.debug("ignoring %s: %s", path, exc)
        return None
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("pid"), int)
        or not isinstance(document.get("listeners"), dict)
    ):
        log.debug("ignoring %s: not a listeners file", path)
        return None
    return document


def remove_listeners(home: Path, worker: int = 0) -> bool:
    """Remove the file if this process wrote it; True if it did. A file another hub
    process wrote (or that cannot be read) stays."""
    document = read_listeners(home, worker)
    if document is None or document["pid"] != os.getpid():
        return False
    with contextlib.suppress(FileNotFoundError):
        listeners_path(home, worker).unlink()
    return True


def is_running(document: Mapping[str, Any]) -> bool:
    """Whether the process that wrote ``document`` (from read_listeners) still exists."""
    pid = document.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    return True
