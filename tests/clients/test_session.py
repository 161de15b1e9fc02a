"""clients/session.py end to end, against a real hub with every binding and tokens that
live a few seconds: a client keeps its token fresh and stays usable past the first
token's life on each of the four bindings; a refresh the hub refuses (the client
removed, its session ended by a logout elsewhere) ends in ``Unauthorized``, with the
connection given up rather than retried; a reconnect after a hub restart sends the
session's current token."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from clients import connect
from clients.api import Hub
from clients.errors import Disconnected, HubTimeout, Unauthorized
from clients.http import HttpConsumer
from clients.session import Session
from tests.support.running import BARRIER, PASSWORD, RunningHub, started_hub
from tests.support.tds import LAMP, lamp_td
from tests.waiting import until

pytestmark = pytest.mark.timeout(120)

BINDINGS = ("http", "websocket", "mqtt", "nats")
BUSES = {"mqtt_enabled": True, "nats_enabled": True}
# A consumer's token lives LIFETIME seconds and may be refreshed 1 s past that, no
# longer: a token that old is refused for everything, refresh included.
LIFETIME = 3


@pytest.fixture
def hub_options() -> dict:
    return {**BUSES, "token_lifetime": {"consumer": LIFETIME}, "refresh_grace": {"consumer": 1}}


def token_hub(running: RunningHub, binding: str, token: str) -> Hub:
    """``connect`` to ``binding`` with ``token`` only (no password to fall back on)."""
    url = running.binding_urls()[binding]
    return connect(url, client_id="mia", token=token, ca=running.hub.ca.ca_cert_pem)


async def lamp_online(running: RunningHub) -> None:
    """The lamp's twin with a brightness (the device then gone: reads need no device)."""
    device = await running.device("lamp-agent")
    await device.client.update_thing(lamp_td())
    await device.client.report_property(LAMP, "brightness", 10)
    await device.client.request(*BARRIER)  # frames are handled in order: the value is in
    await device.close()


async def answers(call: Callable[[], Awaitable[Any]]) -> bool:
    """Whether ``call`` works now (a bus still reconnecting does not, yet)."""
    try:
        await call()
        return True
    except (Disconnected, HubTimeout):
        return False


def dead(token: str, session: Session) -> Callable[[], bool]:
    """Whether ``token`` is past its refresh grace (1 s after its expiry) by now."""
    expires = session.expires if session.token == token else None
    assert expires is not None
    return lambda: time.time() > expires + 1.5


def given_up(hub: Hub) -> bool:
    """Whether the hub's connection stopped trying (HTTP has none to give up)."""
    client = hub.transport.client
    if hub.binding == "websocket":
        return client.closed.is_set()
    if hub.binding == "mqtt":
        return client._closing
    if hub.binding == "nats":
        return client.nc.is_closed
    return True


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_client_keeps_its_token_fresh_past_the_first_ones_life(running, binding):
    await lamp_online(running)
    first = running.add_client("mia", "consumer", "manager")
    async with token_hub(running, binding, first) as hub:
        session = hub.session
        lamp = await hub.consume(LAMP)
        first_is_dead = dead(first, session)
        await until(lambda: session.refreshes >= 1 and first_is_dead(), 3 * LIFETIME)
        assert session.token != first and session.ended is None
        assert running.hub.auth.authenticate_token(session.token).id == "mia"
        assert await lamp.read_property("brightness") == 10

        # The hub drops the client's connections (a role change does): a bus connects
        # again, and only the current token gets in, the first one being long dead.
        before = set(running.hub.router.connections_of("mia"))
        assert before or binding == "http"  # HTTP keeps no connection between requests
        running.hub.auth.update_client("mia", role="operator")
        if before:  # dropped and back: the hub has a connection of mia's, a new one only
            await until(lambda: not before & set(running.hub.router.connections_of("mia")))
            await until(lambda: running.hub.router.connections_of("mia"), 20)
        await until(lambda: answers(lambda: lamp.read_property("brightness")), 20)
        assert session.ended is None and session.refreshes >= 1


@pytest.mark.parametrize("binding", BINDINGS)
@pytest.mark.parametrize("ending", ("removed", "logged out elsewhere"))
async def test_a_refused_refresh_ends_in_unauthorized(running, binding, ending):
    await lamp_online(running)
    token = running.add_client("mia", "consumer", "manager")
    async with token_hub(running, binding, token) as hub:
        lamp = await hub.consume(LAMP)
        assert await lamp.read_property("brightness") == 10
        if ending == "removed":
            running.hub.auth.remove_client("mia")
        else:  # the same session's token, used by another program, logs out
            async with HttpConsumer(
                running.url, ca=running.hub.ca.ca_cert_pem, token=token
            ) as other:
                await other.logout()
        # A bus is dropped by the hub, comes back and is refused, asks for a refresh
        # that is refused too; HTTP finds out at its next request.
        await until(lambda: session_ended(hub, lamp), 20)
        assert isinstance(hub.session.ended, Unauthorized)
        await until(lambda: given_up(hub), 10)  # no more attempts in the background
        with pytest.raises(Unauthorized):
            await lamp.read_property("brightness")


async def session_ended(hub: Hub, lamp) -> bool:
    """Whether the session has ended, after a read (which is how HTTP finds out; a bus
    may refuse it with 401 before it drops the connection)."""
    with contextlib.suppress(Disconnected, HubTimeout, Unauthorized):
        await lamp.read_property("brightness")
    return hub.session.ended is not None


@pytest.mark.parametrize("binding", ("websocket", "mqtt", "nats"))
async def test_a_reconnect_after_a_hub_restart_sends_the_current_token(tmp_path, binding):
    # Long enough to outlive a restart (refreshed after two thirds of it), not the test.
    options = {**BUSES, "token_lifetime": {"consumer": 8}, "refresh_grace": {"consumer": 0.5}}
    home = tmp_path / "home"
    first_hub = contextlib.AsyncExitStack()
    first = await first_hub.enter_async_context(started_hub(home, **options))
    try:
        await lamp_online(first)
        token = first.add_client("mia", "consumer", "manager")
        ports = first.listener_ports()
        async with token_hub(first, binding, token) as hub:
            session = hub.session
            lamp = await hub.consume(LAMP)
            first_is_dead = dead(token, session)
            await until(lambda: session.refreshes >= 1 and first_is_dead(), 20)
            current = session.token

            await first_hub.aclose()  # the hub stops; the client sees its connection go
            async with started_hub(home, **options, **ports) as second:
                await until(lambda: answers(lambda: lamp.read_property("brightness")), 30)
                # it got in with a token of the session it had, not the dead first one
                assert session.ended is None and session.token != token
                assert session.token == current or session.refreshes >= 2
                sid = second.hub.auth.authenticate_token(session.token).session_id
                assert sid == second.hub.auth.signer.verify(token, allow_expired=True).session_id
    finally:
        await first_hub.aclose()


async def test_a_password_client_logs_in_again_when_its_session_ends(running):
    """HTTP with a password: the session ended elsewhere, the next request logs in again."""
    await lamp_online(running)
    running.add_client("mia", "consumer", "manager")
    url = running.binding_urls()["http"]
    async with connect(
        url, client_id="mia", password=PASSWORD, ca=running.hub.ca.ca_cert_pem
    ) as hub:
        lamp = await hub.consume(LAMP)
        first = hub.session.token
        running.hub.auth.sessions.revoke_all("mia")
        assert await lamp.read_property("brightness") == 10
        assert hub.session.token != first and hub.session.ended is None


def test_the_refresh_time_is_ahead_of_the_expiry():
    session = Session("mia")
    session.issued, session.expires = 1000.0, 1003.0
    assert session.refresh_at() == 1002.0  # a third of a short life ahead
    session.issued, session.expires = 1000.0, 4600.0
    assert session.refresh_at() == 4540.0  # a minute ahead of a long one
    assert Session("mia", token="not-a-jwt").refresh_at() is None


async def test_a_refused_password_ends_the_session_at_once():
    session = Session("mia", password="wrong")
    with pytest.raises(Unauthorized):
        await session.renew("wrong")
    assert isinstance(session.ended, Unauthorized)
    with pytest.raises(Unauthorized):
        session.secret()


async def test_without_credentials_there_is_nothing_to_renew():
    assert await Session().renew(None) is False
