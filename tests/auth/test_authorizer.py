"""Every role times every operation, on a Thing of its own and on another agent's."""

import pytest

from auth.authorizer import RoleAuthorizer
from auth.errors import AuthenticationFailed
from vocabulary import operations as ops
from vocabulary.identity import Client
from vocabulary.things import CERTS_THING, CLIENTS_THING

THING = "urn:dev:lamp-1"

READ = {
    "readproperty", "readallproperties", "readmultipleproperties", "observeproperty",
    "unobserveproperty", "observeallproperties", "unobserveallproperties", "subscribeevent",
    "unsubscribeevent", "subscribeallevents", "unsubscribeallevents", "queryaction",
    "queryallactions", "readthing", "queryhistory", "readstate", "observestate",
    "unobservestate",
}  # fmt: skip
# Reading a Thing's history and state is allowed as reading the Thing (an agent: its own).
AGENT_OWN = {"updatething", "deletething", "readthing", "queryhistory", "readstate",
             "reportproperty", "reportevent", "answerrequest"}  # fmt: skip
EVERYTHING = ops.OPERATIONS | {ops.REPORT_PROPERTY, ops.REPORT_EVENT, ops.ANSWER_REQUEST}

# role -> (allowed on a Thing the client owns / invoked, allowed on someone else's)
EXPECTED = {
    "viewer": (READ, READ),
    "operator": (READ | {"invokeaction", "cancelaction"}, READ | {"invokeaction"}),
    "manager": (
        READ | {"invokeaction", "cancelaction", "writeproperty", "writemultipleproperties"},
        READ | {"invokeaction", "writeproperty", "writemultipleproperties"},
    ),
    "admin": (EVERYTHING, EVERYTHING),
    "agent": (AGENT_OWN, {"updatething"}),  # another's id: the directory answers Conflict
    "service": (
        AGENT_OWN | READ | {"invokeaction", "cancelaction", "writeproperty",
                            "writemultipleproperties"},
        READ | {"updatething", "invokeaction", "writeproperty", "writemultipleproperties"},
    ),
}  # fmt: skip
KIND = {"agent": "agent", "service": "service"}


@pytest.fixture
def authorizer(auth):
    for role in EXPECTED:
        auth.add_client(f"the-{role}", KIND.get(role, "consumer"), role)
    auth.add_client("other-agent", "agent", "agent")
    return RoleAuthorizer(auth.accounts, auth.sessions)


@pytest.mark.parametrize("role", sorted(EXPECTED))
@pytest.mark.parametrize("operation", sorted(EVERYTHING))
def test_role_operation_matrix(authorizer, role, operation):
    client = Client(f"the-{role}", role)
    own, others = EXPECTED[role]
    mine = authorizer.authorize(client, operation, THING, owner=client.id)
    theirs = authorizer.authorize(client, operation, THING, owner="other-agent")
    assert (mine is None) == (operation in own), mine
    assert (theirs is None) == (operation in others), theirs
    if mine is not None:
        assert operation in mine or "owner" in mine or "own" in mine  # says what was refused


@pytest.mark.parametrize("role", ["viewer", "operator", "manager", "agent", "service"])
def test_only_admins_use_the_clients_and_certificates_things(authorizer, role):
    client = Client(f"the-{role}", role)
    for thing in (CLIENTS_THING, CERTS_THING):
        assert authorizer.authorize(client, "invokeaction", thing, owner="wothub") is not None
    admin = Client("the-admin", "admin")
    assert authorizer.authorize(admin, "invokeaction", CLIENTS_THING, owner="wothub") is None


def test_role_changed_mid_session_applies_to_the_next_request(auth, authorizer):
    client = Client("the-viewer", "viewer")  # the role the connection started with
    assert authorizer.authorize(client, "invokeaction", THING, "x") is not None
    auth.update_client("the-viewer", role="operator")
    assert authorizer.authorize(client, "invokeaction", THING, "x") is None


def test_removed_disabled_or_logged_out_clients_are_unauthenticated(auth, authorizer):
    token = auth.new_token("alice")["token"]
    alice = auth.authenticate_token(token)
    assert authorizer.authorize(alice, "readproperty", THING, "x") is None
    auth.logout(token)
    with pytest.raises(AuthenticationFailed):
        authorizer.authorize(alice, "readproperty", THING, "x")
    auth.update_client("the-viewer", enabled=False)
    with pytest.raises(AuthenticationFailed):
        authorizer.authorize(Client("the-viewer", "viewer"), "readproperty", THING, "x")
    auth.remove_client("the-manager")
    with pytest.raises(AuthenticationFailed):
        authorizer.authorize(Client("the-manager", "manager"), "readproperty", THING, "x")


def test_only_admins_override_ownership(authorizer):
    assert authorizer.overrides_ownership(Client("the-admin", "admin"))
    assert not authorizer.overrides_ownership(Client("the-manager", "manager"))
    assert not authorizer.overrides_ownership(Client("ghost", "admin"))  # no such account
