"""Fixtures for the digitwin tests: a real LevelDB store in a temp dir and the TD 1.1
example lamp (tests/support/examples.py)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bucketstore import BucketStore, open_store
from tests.support.examples import MY_LAMP, load_example


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
def lamp() -> dict[str, Any]:
    """TD 1.1 example 1: one property, one action, one event, basic security."""
    return load_example(MY_LAMP)
