"""Fixtures of the hub package's tests that run the command line in-process."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def clean_environment(monkeypatch, tmp_path):
    """No WOTHUB_* setting of the caller's, and never the real home."""
    for name in list(os.environ):
        if name.startswith("WOTHUB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
