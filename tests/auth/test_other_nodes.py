"""Two auth services on one shared store (two hub nodes on the jetstream backend, with
the same token signing key): what one node does to clients and sessions holds on the
other at once (issue 22: a token issued by one node is accepted by another; a logout,
a role change or a removal on one applies on every node)."""

import asyncio

import pytest

from auth.errors import AuthenticationFailed
from tests.waiting import until

from .conftest import make_auth


@pytest.fixture
async def nodes(tmp_path, jetstream_store_factory):
    """Nodes one and two: the same home (one token signing key), a store each on the
    same servers and prefix, each following the other's changes on this loop."""
    loop = asyncio.get_running_loop()
    one = make_auth(tmp_path / "home", jetstream_store_factory())
    two = make_auth(tmp_path / "home", jetstream_store_factory())
    told: list[tuple[str, str, str]] = []
    for name, node in (("one", one), ("two", two)):
        node.follow_other_nodes(loop)
        node.on_client_changed = lambda client, reason, name=name: told.append(
            (name, "client", client)
        )
        node.on_session_ended = lambda client, session, name=name: told.append(
            (name, "session", client)
        )
    one.add_client("alice", "consumer", "viewer", password="alice-password")
    # Node two is told of the new client too; the tests start from nothing told.
    await until(lambda: ("two", "client", "alice") in told, timeout=5)
    told.clear()
    return one, two, told


async def test_a_token_from_one_node_is_accepted_by_the_other(nodes):
    one, two, _ = nodes
    token = (await one.login("alice", "alice-password"))["token"]
    await until(lambda: two.sessions.get(_session(one, token)) is not None, timeout=5)
    assert two.authenticate_token(token).id == "alice"


async def test_a_logout_on_one_node_is_refused_by_the_other(nodes):
    one, two, told = nodes
    token = (await one.login("alice", "alice-password"))["token"]
    await until(lambda: two.sessions.get(_session(one, token)) is not None, timeout=5)
    assert two.authenticate_token(token).role == "viewer"  # now remembered by node two
    one.logout(token)
    await until(lambda: ("two", "session", "alice") in told, timeout=1)
    with pytest.raises(AuthenticationFailed):
        two.authenticate_token(token)


async def test_a_role_change_or_removal_on_one_node_applies_on_the_other(nodes):
    one, two, told = nodes
    token = (await one.login("alice", "alice-password"))["token"]
    await until(lambda: two.sessions.get(_session(one, token)) is not None, timeout=5)
    assert two.authenticate_token(token).role == "viewer"
    one.update_client("alice", role="operator")
    await until(lambda: ("two", "client", "alice") in told, timeout=1)
    assert two.authenticate_token(token).role == "operator"  # not the remembered viewer
    assert ("one", "client", "alice") in told  # node one told its own hub as before
    told.clear()
    one.remove_client("alice")
    await until(lambda: ("two", "client", "alice") in told, timeout=1)
    with pytest.raises(AuthenticationFailed):
        two.authenticate_token(token)


async def test_a_password_changed_on_one_node_is_checked_afresh_on_the_other(nodes):
    one, two, _ = nodes
    assert (await two.authenticate_password("alice", "alice-password")).id == "alice"
    one.update_client("alice", password="a-new-password-42")
    await until(
        lambda: two.accounts.get("alice").password_hash == one.accounts.get("alice").password_hash,
        timeout=1,
    )
    with pytest.raises(AuthenticationFailed):
        await two.authenticate_password("alice", "alice-password")
    assert (await two.authenticate_password("alice", "a-new-password-42")).id == "alice"


def _session(auth, token):
    return auth.signer.verify(token).session_id
