"""A backup taken while the hub is under a write load restores into a new home where a
hub serves the same Things, clients, certificates and queued actions."""

from __future__ import annotations

import asyncio
import tarfile

import pytest

from bucketstore import open_store
from hub import cli
from hub.backup import RestoreError, restore
from hub.runtime import Hub
from tests.support.http import ASYNC
from tests.support.running import PASSWORD, hub_config
from tests.support.tds import SIGN, sign_td
from tests.waiting import until

pytestmark = pytest.mark.timeout(120)


async def write_load(hub, stop: asyncio.Event) -> int:
    """Property reports and new Things until told to stop (bounded)."""
    agent = hub.agent("loader")
    count = 0
    for n in range(2000):
        if stop.is_set():
            break
        report = {"operation": "observeproperty", "thingID": SIGN, "name": "text"}
        if n % 50 == 0:
            td = sign_td(f"urn:dev:ops:load-{n}")
            hub.send(
                agent,
                {
                    "messageType": "request",
                    "operation": "updatething",
                    "correlationID": "u",
                    "input": td,
                },
            )
        owner = hub.agent("sign-agent")
        hub.send(owner, {"messageType": "notification", "value": f"v{n}", **report})
        hub.hub.router.disconnect(owner)
        count += 1
        await asyncio.sleep(0)
    hub.hub.router.disconnect(agent)
    return count


async def test_backup_during_writes_restores_to_an_equal_hub(running, tmp_path):
    running.add_thing("sign-agent", sign_td())
    running.add_client("carol", "consumer", "operator")
    admin_token = running.add_client("ada", "consumer", "admin")
    queued = []
    async with running.session(admin_token) as admin:
        for n in range(3):  # the agent is offline: these wait in the queue
            say = f"/things/{SIGN}/actions/say"
            async with admin.post(say, json=f"m{n}", headers=ASYNC) as response:
                assert response.status == 201
                queued.append((await response.json())["id"])
    ca = tmp_path / "ca.pem"
    ca.write_bytes(running.hub.ca.ca_cert_pem)
    backup = tmp_path / "hub.tar.gz"

    stop = asyncio.Event()
    load = asyncio.create_task(write_load(running, stop))
    await until(lambda: running.hub.twin.thing("urn:dev:ops:load-0") is not None)  # writing
    code = await asyncio.to_thread(
        cli.main,
        ["backup", str(backup), "--url", running.url, "--ca", str(ca), "--token", admin_token],
    )
    stop.set()
    writes = await load
    assert code == 0 and writes > 0
    with tarfile.open(backup) as tar:
        names = tar.getnames()
    assert "wothub-backup.json" in names and "certs/ca.pem" in names
    assert any(name.startswith("keys/") for name in names)

    home = tmp_path / "restored"
    assert cli.main(["restore", str(backup), "--home", str(home)]) == 0
    assert (home / "certs").stat().st_mode & 0o777 == 0o700
    with pytest.raises(RestoreError, match="not empty"):
        restore(backup, home)

    config = hub_config(home)
    store = open_store(config.store_path, "leveldb")
    hub = Hub(config, store)
    await hub.start()
    try:
        assert hub.twin.thing(SIGN) is not None
        assert hub.ca.ca_cert_pem == running.hub.ca.ca_cert_pem
        assert (await hub.auth.login("carol", PASSWORD))["token"]
        # Tokens signed before the backup still verify: the signing key came along.
        assert hub.auth.authenticate_token(admin_token).id == "ada"
        restored = [r.id for r in hub.twin.requests.open_for_thing(SIGN)]
        assert restored == queued
        # Every Thing the load had registered when the snapshot was taken came along,
        # and nothing half-written: each restored twin TD is whole.
        loaded = hub.twin.things_of("loader")
        assert all(hub.twin.twin_td(thing_id) for thing_id in loaded)
    finally:
        await hub.stop()
        store.close()


def test_restore_refuses_a_non_empty_home_and_foreign_files(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "something").write_text("x")
    backup = tmp_path / "b.tar.gz"
    with tarfile.open(backup, "w:gz") as tar:
        tar.add(home / "something", "wothub-backup.json")
    with pytest.raises(RestoreError, match="not empty"):
        restore(backup, home)
    assert cli.main(["restore", str(backup), "--home", str(tmp_path / "new")]) == 1


def test_a_truncated_backup_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    source = tmp_path / "source"
    (source / "certs").mkdir(parents=True)
    (source / "certs" / "ca.pem").write_bytes(b"x" * 200_000)  # big enough to cut in two
    backup = tmp_path / "b.tar.gz"
    with tarfile.open(backup, "w:gz") as tar:
        tar.add(source / "certs", "certs")
    data = backup.read_bytes()
    backup.write_bytes(data[: len(data) // 2])
    with pytest.raises(RestoreError, match="cannot read"):
        restore(backup, tmp_path / "new")
    assert cli.main(["restore", str(backup), "--home", str(tmp_path / "other")]) == 1
    assert "cannot read" in capsys.readouterr().err
