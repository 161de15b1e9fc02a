"""The binding contract: the Router implements ``Core`` exactly, and bindings call
nothing on it but ``Core``'s members (no reach-in to the twin, authorizer, subscription
index or notification log)."""

import ast
import inspect
from pathlib import Path

from core.contract import Core
from core.router import Router

ROOT = Path(__file__).resolve().parents[2]


def core_members() -> dict[str, object]:
    return {name: member for name, member in vars(Core).items() if not name.startswith("_")}


def test_the_router_implements_every_core_member_with_the_same_signature():
    members = core_members()
    assert {"connect", "handle", "subscribe", "replay", "twin_td", "authorize"} <= set(members)
    for name, member in members.items():
        implemented = getattr(Router, name, None)
        assert implemented is not None, f"Router has no {name}"
        if isinstance(member, property):
            assert isinstance(implemented, property), name
            continue
        assert inspect.signature(implemented) == inspect.signature(member), name


def router_calls(path: Path) -> set[str]:
    """Attributes read on anything named ``router`` (``router.x``, ``self.router.x``)."""
    calls = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", None)
        if name == "router":
            calls.add(node.attr)
    return calls


def test_bindings_use_only_the_core_contract():
    files = sorted((ROOT / "bindings").rglob("*.py"))
    used = {path.relative_to(ROOT).as_posix(): router_calls(path) for path in files}
    assert any(used.values())  # the scan finds the calls it checks
    allowed = set(core_members())
    outside = {path: sorted(calls - allowed) for path, calls in used.items() if calls - allowed}
    assert outside == {}


def test_bindings_do_not_import_the_router_or_its_parts():
    parts = {"core.router", "core.dispatch", "core.delivery", "core.fanout", "core.queries"}
    parts |= {"core.things", "core.timers", "core.connections", "core.access", "core.stats"}
    found = []
    for path in sorted((ROOT / "bindings").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module in parts:
                found.append(f"{path.relative_to(ROOT)}: {node.module}")
    assert found == []
