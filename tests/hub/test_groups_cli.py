"""``wothub groups list|add|remove|show`` against a real hub over HTTPS (in-process
through ``hub.cli.main``, in a thread since main runs its own event loop)."""

from __future__ import annotations

import asyncio
import json

import pytest

from hub.cli import main
from tests.support import tds

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("clean_environment")]


async def wothub(capsys, *argv) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def flags(running, client_id: str, role: str) -> list:
    ca = running.hub.config.home / "certs" / "ca.pem"
    token = running.add_client(client_id, "consumer", role)
    return ["--url", running.url, "--ca", ca, "--token", token]


async def test_add_list_show_remove(running, capsys):
    for n in range(3):
        lamp = tds.lamp_td(f"urn:dev:cli:{n}", f"Lamp {n}", **{"@type": "x:Lamp"})
        running.add_thing("agent-a" if n else "agent-b", lamp)
    manager = flags(running, "mia", "manager")
    code, out, err = await wothub(
        capsys, "groups", "add", "lamps", "--type", "x:Lamp", "--agent", "agent-a", *manager
    )
    assert code == 0, err
    assert out.splitlines()[1].split() == ["lamps", "-", "agent=agent-a", "type=x:Lamp", "yes"]
    code, out, err = await wothub(
        capsys, "groups", "add", "two", "--title", "Two",
        "--member", "urn:dev:cli:0", "--member", "urn:dev:nope", *manager,
    )  # fmt: skip
    assert code == 0, err

    code, out, err = await wothub(capsys, "groups", "list", "--json", *manager)
    assert code == 0, err
    assert [g["name"] for g in json.loads(out)] == ["lamps", "two"]
    code, out, err = await wothub(capsys, "groups", "show", "lamps", *manager)
    assert code == 0, err
    assert "urn:dev:cli:1" in out and "urn:dev:cli:2" in out and "urn:dev:cli:0" not in out
    code, out, err = await wothub(capsys, "groups", "show", "two", *manager)
    assert "(listed, not registered: urn:dev:nope)" in out

    code, out, err = await wothub(capsys, "groups", "remove", "two", *manager)
    assert code == 0, err
    code, out, err = await wothub(capsys, "groups", "show", "two", *manager)
    assert code == 1 and "404" in err


async def test_refusals(running, capsys):
    viewer = flags(running, "vera", "viewer")
    code, _, err = await wothub(capsys, "groups", "add", "g", "--member", "urn:x", *viewer)
    assert code == 4 and "may not managegroups" in err  # not allowed
    code, _, err = await wothub(capsys, "groups", "add", "g", *viewer)
    assert code == 2 and "either members" in err  # neither members nor a query
    manager = flags(running, "mia", "manager")
    code, _, err = await wothub(capsys, "groups", "add", "bad!", "--agent", "a", *manager)
    assert code == 1 and "400" in err  # refused by the hub: not a group name
