"""What a test needs from the machine (a command, a Python module, node-wot) and what
happens when it is missing: the test fails, naming what to install, so that `make test`
never passes by skipping. `make install` (or `make system-packages`) installs it all.

A developer without those tools can opt out explicitly with WOTHUB_ALLOW_MISSING=1:
then such tests skip, saying why. CI never sets it."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

ALLOW_MISSING = "WOTHUB_ALLOW_MISSING"


def missing(what: str, install: str) -> None:
    """Fails the running test (or skips it where WOTHUB_ALLOW_MISSING=1) for lack of ``what``."""
    reason = f"{what} is missing: {install}"
    if os.environ.get(ALLOW_MISSING) == "1":
        pytest.skip(f"{reason} ({ALLOW_MISSING}=1)")
    pytest.fail(f"{reason}; or set {ALLOW_MISSING}=1 to skip such tests", pytrace=False)


def require_command(*names: str, package: str) -> str:
    """The path of the first of ``names`` on PATH; fails the test when none is there."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    missing(
        f"the {names[0]} command",
        f"install Debian's {package} package (`make system-packages` does)",
    )
    raise AssertionError("unreachable")


def require_module(name: str) -> None:
    """Fails the test when the Python module ``name`` (a dev dependency) is not installed."""
    if importlib.util.find_spec(name) is None:
        missing(f"the Python module {name}", "pip install -e '.[dev]' (`make install` does)")
