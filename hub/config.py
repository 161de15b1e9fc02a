"""Hub configuration: where the hub keeps its data and which store backend it uses.

Precedence: command-line flag, then environment variable, then default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bucketstore import DEFAULT_BACKEND


def default_home() -> Path:
    """``$WOTHUB_HOME``, else ``$XDG_DATA_HOME/wothub``, else ``~/.local/share/wothub``."""
    if home := os.environ.get("WOTHUB_HOME"):
        return Path(home)
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "wothub"


@dataclass(frozen=True)
class Config:
    home: Path
    store_backend: str = DEFAULT_BACKEND
    log_level: str = "INFO"
    server_names: tuple[str, ...] = ()  # extra DNS names / addresses for the server cert

    @property
    def store_path(self) -> Path:
        return self.home / "store"
