"""docs/nats.md, "When a client changes": nats-server checks a login once, so the hub
closes the open connections a change concerns (``$SYS.REQ.SERVER.<id>.KICK``) within a
second, and their reconnect goes through the auth callout again: refused, or with the
new role's permissions. Other connections of the same client stay. nats-py clients on
the managed nats-server; each change made as the hub's Things make it."""

from __future__ import annotations

import ssl
import time

import orjson
import pytest

from bindings.nats import ejection
from bindings.nats.callout import Login
from tests.waiting import until
from vocabulary.identity import Client

from .conftest import Watched

pytestmark = pytest.mark.timeout(90)

WITHIN = 1.0  # seconds from the change to the disconnect
AUTHN = "urn:wothub:authn"


def ejected_in_time(client: Watched, since: float) -> bool:
    return bool(client.disconnects) and client.disconnects[0] - since < WITHIN


async def refused_for_good(client: Watched) -> None:
    """Its reconnects are refused by the callout until it gives up."""
    await until(lambda: client.closed)
    assert client.reconnects == 0
    assert any("authorization violation" in error.lower() for error in client.errors)


async def ejected_alone(client: Watched, since: float, bystander: Watched) -> None:
    """``client`` was disconnected within WITHIN of ``since`` and may not come back;
    ``bystander`` was left alone."""
    await until(lambda: client.disconnects, WITHIN * 5)
    assert ejected_in_time(client, since), client.disconnects[0] - since
    await refused_for_good(client)
    await still_open(bystander)


async def still_open(client: Watched) -> None:
    """A barrier: the server still answers it, and nothing happened to it."""
    await client.nc.flush()
    assert client.nc.is_connected and not client.disconnects


async def test_a_role_change_reconnects_with_the_new_permissions(nats_hub):
    nats_hub.add("vera")  # a viewer
    vera = await Watched.connect(nats_hub, "vera")
    try:
        invoke = "wot.client.vera.req.invokeaction"
        assert await vera.refusals([("publish", invoke)]) == {("publish", invoke)}
        since = time.monotonic()
        nats_hub.hub.auth.update_client("vera", role="operator")
        await until(lambda: vera.disconnects, WITHIN * 5)
        assert ejected_in_time(vera, since), vera.disconnects[0] - since
        await until(lambda: vera.reconnects == 1)
        assert await vera.refusals([("publish", invoke)]) == set()
    finally:
        await vera.close()


@pytest.mark.parametrize(
    "change",
    [
        lambda auth: auth.remove_client("lamp-agent"),
        lambda auth: auth.update_client("lamp-agent", enabled=False),
        lambda auth: auth.update_client("lamp-agent", password="another password 1"),
    ],
    ids=["removed", "disabled", "new password"],
)
async def test_a_removed_disabled_or_repassworded_client_is_ejected(nats_hub, change):
    nats_hub.add("lamp-agent", "agent", "agent")
    agent = await Watched.connect(nats_hub, "lamp-agent")
    nats_hub.add("vera")
    bystander = await Watched.connect(nats_hub, "vera")
    try:
        since = time.monotonic()
        change(nats_hub.hub.auth)
        await ejected_alone(agent, since, bystander)
    finally:
        await agent.close()
        await bystander.close()


async def test_logout_ejects_the_connections_of_that_session_only(nats_hub):
    nats_hub.add("otto", "consumer", "operator")
    token = nats_hub.hub.auth.new_token("otto")["token"]
    by_token = await Watched.connect(nats_hub, "otto", token=token)
    by_password = await Watched.connect(nats_hub, "otto")
    other_token = nats_hub.hub.auth.new_token("otto")["token"]
    by_other_token = await Watched.connect(nats_hub, "otto", token=other_token)
    try:
        since = time.monotonic()
        # The client logs out over NATS itself, naming its token (a NATS message does
        # not say which connection sent it); the answer comes before the kick.
        reply = await by_token.nc.request(
            "wot.client.otto.req.invokeaction",
            orjson.dumps({"thingID": AUTHN, "name": "logout", "input": {"token": token}}),
            timeout=5,
        )
        assert "error" not in orjson.loads(reply.data)
        await ejected_alone(by_token, since, by_password)
        await still_open(by_other_token)
    finally:
        for client in (by_token, by_password, by_other_token):
            await client.close()


async def test_a_revoked_certificate_ejects_the_connections_made_with_it(nats_hub):
    hub = nats_hub.hub
    nats_hub.add("cert-agent", "agent", "agent")
    issued, key = hub.ca.generate_for("cert-agent")
    home = hub.config.home
    (home / "c.pem").write_bytes(issued.cert_pem)
    (home / "c.key").write_bytes(key)
    tls = ssl.create_default_context(cadata=nats_hub.ca_pem.decode())
    tls.load_cert_chain(home / "c.pem", home / "c.key")
    by_certificate = await Watched.connect(nats_hub, None, url=nats_hub.ws_url, tls=tls)
    by_password = await Watched.connect(nats_hub, "cert-agent")
    try:
        since = time.monotonic()
        hub.ca.revoke(issued.serial)
        await ejected_alone(by_certificate, since, by_password)
    finally:
        await by_certificate.close()
        await by_password.close()


def test_a_login_ejected_before_its_connect_event_is_kicked_on_it():
    logins = ejection.Logins()
    vera = Login(Client("vera", "viewer", "s1"), "NSERVER", 7, "token")
    logins.logged_in(vera)
    logins.logged_in(Login(Client("otto", "operator"), "NSERVER", 8, "password"))
    assert logins.matching(ejection.of_session("s1")) == [("NSERVER", 7)]
    assert logins.connected(("NSERVER", 7)) == (vera, True)  # kick it now
    assert logins.connected(("NSERVER", 8))[1] is False
    assert logins.matching(ejection.of_client("otto")) == [("NSERVER", 8)]
    assert logins.connected(("NSERVER", 8))[1] is False  # announced already: kicked then
    assert logins.pop(("NSERVER", 7)) == vera and len(logins) == 1
