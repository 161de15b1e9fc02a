"""hub/event_loop.py: which loop `wothub serve` runs on."""

from __future__ import annotations

import asyncio

import pytest

from hub import event_loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_takes_uvloop_where_installed_and_asyncio_when_asked():
    assert event_loop.uvloop_available()  # a dependency on this platform (pyproject.toml)
    assert event_loop.run(_loop_module(), "auto").startswith("uvloop")
    assert event_loop.run(_loop_module(), "uvloop").startswith("uvloop")
    assert event_loop.run(_loop_module(), "asyncio").startswith("asyncio")


def test_uvloop_asked_for_and_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(event_loop, "uvloop_available", lambda: False)
    assert event_loop.chosen("auto") == "asyncio"
    with pytest.raises(RuntimeError, match="uvloop is not installed"):
        event_loop.chosen("uvloop")


def test_serve_says_why_it_cannot_start_without_uvloop(monkeypatch, tmp_path, caplog):
    """A clear log line and exit code 1, not a traceback."""
    from hub.config import Config
    from hub.runtime import serve

    monkeypatch.setattr(event_loop, "uvloop_available", lambda: False)
    with caplog.at_level("ERROR"):
        assert serve(Config(home=tmp_path / "home", event_loop="uvloop")) == 1
    assert "uvloop is not installed" in caplog.text
    assert not (tmp_path / "home" / "store").exists()  # it stopped before opening anything
