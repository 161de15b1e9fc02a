"""The official W3C examples in tests/support/data (README.md there says where each
comes from), kept once for every test that reads one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
# Every TD example (not the problem document): each must pass validate_td.
EXAMPLE_TDS = sorted(DATA.glob("*.td.json"))
MY_LAMP = "td11-ex01-MyLampThing-simple.td.json"  # TD 1.1 Example 1


def load_example(name: str) -> Any:
    """One example by file name, a fresh copy each call."""
    return json.loads((DATA / name).read_text("utf-8"))
