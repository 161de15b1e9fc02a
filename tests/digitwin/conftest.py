"""Fixtures for the digitwin tests: a real LevelDB store in a temp dir and the example TDs."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bucketstore import BucketStore, open_store

DATA = Path(__file__).parent / "data"


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_path: Path) -> Iterator[BucketStore]:
    """The default (LevelDB) store; a test may close it and reopen ``store_path`` itself."""
    opened = open_store(store_path)
    yield opened
    opened.close()


@pytest.fixture
def load_td() -> Callable[[str], dict[str, Any]]:
    """Load one example TD from ``data/`` by file name (a fresh copy each call)."""

    def load(name: str) -> dict[str, Any]:
        return json.loads((DATA / name).read_text("utf-8"))

    return load


@pytest.fixture
def lamp(load_td: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """TD 1.1 example 1: one property, one action, one event, basic security."""
    return load_td("td11-ex01-MyLampThing-simple.td.json")
