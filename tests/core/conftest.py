"""Fixtures for the core tests (the router without bindings): a real LevelDB store, the
real core and router, and the production authorizer (``auth.authorizer.RoleAuthorizer``)
over real accounts and sessions of an AuthService on the same store."""

import asyncio
from pathlib import Path

import pytest

from auth.authorizer import RoleAuthorizer
from auth.passwords import HashCost
from auth.service import AuthConfig, AuthService
from bucketstore import open_store
from core.router import Router
from digitwin.core import TwinConfig
from tests.support.messages import request
from tests.support.tds import lamp_td
from vocabulary.identity import Client

# The clients the router tests use, as accounts: id -> (kind, role). Added without
# passwords (nothing here logs in with one); ``Hub.login`` opens a session for a client.
CLIENTS = {
    "lamp-agent": ("agent", "agent"),
    "other-agent": ("agent", "agent"),
    "fan-agent": ("agent", "agent"),
    "sam": ("service", "service"),
    "vera": ("consumer", "viewer"),
    "a": ("consumer", "viewer"),
    "b": ("consumer", "viewer"),
    "c": ("consumer", "viewer"),
    "slow": ("consumer", "viewer"),
    "fast": ("consumer", "viewer"),
    "otto": ("consumer", "operator"),
    "olga": ("consumer", "operator"),
    "mia": ("consumer", "manager"),
    "root": ("consumer", "admin"),
}
CHEAP = HashCost(time_cost=1, memory_kib=1024, parallelism=1)


async def receive(connection, timeout=2.0):
    """The next message the router queued for a connection."""
    _, msg = await asyncio.wait_for(connection.next(), timeout)
    return msg


async def drain(connection):
    """Everything queued for a connection right now (next() does not wait for these)."""
    out = []
    while connection.pending():
        out.append((await connection.next())[1])
    return out


class CoreHub:
    """A store, auth service, core and router on a LevelDB directory, reopened at will
    (the auth home, with the token key, is next to it); or on the store that
    ``open_store`` opens (e.g. a JetStreamStore: one node of several sharing it)."""

    def __init__(self, path, open_store=open_store, **config):
        self.path = Path(path)
        self.config = TwinConfig(**config)
        self._open_store = open_store
        self.store = self.auth = self.twin = self.router = None

    async def open(self, **router_options):
        self.store = self._open_store(self.path)
        self.auth = AuthService(
            self.store, self.path.parent / f"{self.path.name}-home", AuthConfig(hash_cost=CHEAP)
        )
        for client_id, (kind, role) in CLIENTS.items():
            if self.auth.accounts.get(client_id) is None:
                self.auth.add_client(client_id, kind, role)
        authorizer = RoleAuthorizer(self.auth.accounts, self.auth.sessions)
        self.router = Router(self.store, authorizer, twin_config=self.config, **router_options)
        self.twin = self.router.twin
        await self.router.start()
        return self

    async def close(self):
        await self.router.stop()
        self.auth.hash_pool.close()
        self.twin.close()
        self.store.close()

    def connect(self, client_id, role):
        """A connection as a binding opens it for an authenticated client (the role is
        the account's: a test naming another one is wrong)."""
        account = self.auth.accounts.get(client_id)
        assert account is not None and account.role == role, (client_id, role, account)
        return self.router.connect(Client(client_id, role), "test")

    def login(self, client_id):
        """A connection for a client that presented a token: (connection, token)."""
        token = self.auth.new_token(client_id)["token"]
        client = self.auth.authenticate_token(token)
        return self.router.connect(client, "test"), token

    def register(self, agent, td=None):
        response = self.router.handle(agent, request("updatething", input=td or lamp_td()))
        assert response.error is None, response.error
        return response.output["id"]


@pytest.fixture
async def core_hub(tmp_path):
    """A CoreHub, open: the router and the core on LevelDB, no binding."""
    hub = await CoreHub(tmp_path / "store").open()
    yield hub
    await hub.close()
