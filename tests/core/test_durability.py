"""What survives a restart and a kill -9 (docs/architecture.md, what is kept where)."""

import json
import os
import signal
import subprocess
import sys
import textwrap

from bucketstore import open_store
from digitwin.core import DigiTwin
from tests.support.messages import notification, request
from tests.support.tds import LAMP
from tests.waiting import until

from .conftest import CoreHub, drain


async def test_restart_brings_back_tds_owners_queued_requests_and_flushed_values(tmp_path):
    hub = await CoreHub(tmp_path / "store").open()
    agent = hub.connect("lamp-agent", "agent")
    hub.register(agent)
    hub.router.handle(agent, notification("observeproperty", LAMP, "brightness", value=55))
    hub.router.handle(agent, notification("subscribeevent", LAMP, "overheated", value=90.5))
    hub.router.disconnect(agent)
    operator, manager = hub.connect("otto", "operator"), hub.connect("mia", "manager")
    action = hub.router.handle(operator, request("invokeaction", LAMP, "fade", input={"level": 9}))
    write = hub.router.handle(manager, request("writeproperty", LAMP, "on", input=True))
    await hub.close()  # a clean stop flushes the twins

    hub = await CoreHub(tmp_path / "store").open()
    try:
        assert hub.twin.thing(LAMP).owner == "lamp-agent"
        assert hub.twin.read_property(LAMP, "brightness")["value"] == 55
        assert hub.twin.read_event(LAMP, "overheated")["value"] == 90.5
        assert hub.twin.read_property(LAMP, "on")["desired"]["value"] is True
        assert hub.twin.presence(LAMP)["online"] is False
        other = hub.connect("other-agent", "agent")
        taken = hub.router.handle(other, request("updatething", input={"id": LAMP}))
        assert taken.error["status"] in (400, 409)

        agent = hub.connect("lamp-agent", "agent")
        delivered = await drain(agent)
        assert [m.action_id for m in delivered] == [action.action_id, write.action_id]
    finally:
        await hub.close()


async def test_values_are_written_behind_on_the_flush_interval(tmp_path):
    hub = await CoreHub(tmp_path / "store").open(flush_interval=0.05)
    try:
        agent = hub.connect("lamp-agent", "agent")
        hub.register(agent)
        hub.router.handle(agent, notification("observeproperty", LAMP, "brightness", value=12))
        assert hub.twin.stats().dirty == 1
        await until(lambda: hub.twin.stats().dirty == 0, 1.0)  # the flush loop wrote it
        assert b'"brightness"' in hub.store.bucket("twins").get(LAMP)
    finally:
        await hub.close()


HUB_PROCESS = textwrap.dedent(
    """
    import asyncio, json, sys
    sys.path.insert(0, sys.argv[2])
    from tests.core.conftest import CoreHub
    from tests.support.messages import request
    from tests.support.tds import LAMP

    async def main():
        hub = await CoreHub(sys.argv[1]).open()
        agent = hub.connect("lamp-agent", "agent")
        hub.register(agent)
        hub.router.disconnect(agent)
        operator = hub.connect("otto", "operator")
        accepted = hub.router.handle(
            operator, request("invokeaction", LAMP, "fade", input={"level": 77})
        )
        print(json.dumps({"id": accepted.action_id, "status": accepted.status}), flush=True)
        await asyncio.sleep(60)  # killed long before this ends

    asyncio.run(main())
    """
)


def test_sigkill_after_an_action_was_acknowledged_loses_nothing(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    process = subprocess.Popen(
        [sys.executable, "-c", HUB_PROCESS, str(tmp_path / "store"), root],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        acknowledged = json.loads(process.stdout.readline())
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert acknowledged["status"] == "pending"

    with open_store(tmp_path / "store") as store:
        twin = DigiTwin(store)
        record = twin.get_request(acknowledged["id"])
        assert (record.status, record.input, record.sender_id) == ("pending", {"level": 77}, "otto")
        assert twin.thing(LAMP).owner == "lamp-agent"
        assert [r.id for r in twin.open_requests_of_agent("lamp-agent")] == [acknowledged["id"]]
