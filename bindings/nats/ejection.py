"""The NATS connections the auth callout let in, and ending them when their login no
longer holds (docs/nats.md, "When a client changes").

nats-server checks a connection's credentials and fixes its permissions once, at login.
So when a client is removed, disabled, changes role or password, logs out (its token's
session ends) or has its certificate revoked, the hub asks the server to close each
connection that logged in with what changed: ``$SYS.REQ.SERVER.<server id>.KICK`` with
``{"cid": N}``, from the system account. The client's reconnect goes through the callout
again, which refuses it or grants the new role's permissions. The same holds for MQTT
clients, which log in through the same callout.

A connection is known by (server id, cid) from the callout request (``client_info.id``),
the same pair the server's CONNECT and DISCONNECT events carry. A login the server has
not yet announced with CONNECT may still be under way when it is ejected: the kick may
find no such client yet, so it is kicked again when its CONNECT comes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from vocabulary.identity import Client

from .callout import Login

log = logging.getLogger("wothub.nats")

Key = tuple[str, int]  # (server id, cid)

KICK_TIMEOUT = 1.0  # seconds for the server to answer one kick
MAX_PENDING = 10_000  # logins never announced by a CONNECT (the client went at once)


class Logins:
    """Open NATS connections by (server id, cid), with the login each made."""

    def __init__(self) -> None:
        self._connected: dict[Key, Login] = {}
        self._pending: dict[Key, Login] = {}  # authorized, no CONNECT event yet
        self._doomed: set[Key] = set()  # ejected while pending: kicked on CONNECT

    def logged_in(self, login: Login) -> None:
        self._pending[(login.server_id, login.connection_id)] = login
        while len(self._pending) > MAX_PENDING:
            self.pop(next(iter(self._pending)))

    def connected(self, key: Key) -> tuple[Login | None, bool]:
        """The login of a connection the server just announced, and whether it was
        ejected meanwhile (then it must be kicked now)."""
        login = self._pending.pop(key, None)
        if login is not None:
            self._connected[key] = login
        else:
            login = self._connected.get(key)
        doomed = key in self._doomed
        self._doomed.discard(key)
        return login, doomed

    def pop(self, key: Key) -> Login | None:
        """The login of a connection that closed."""
        self._doomed.discard(key)
        return self._connected.pop(key, None) or self._pending.pop(key, None)

    def client(self, key: Key) -> Client | None:
        login = self._connected.get(key) or self._pending.get(key)
        return login.client if login is not None else None

    def of_client(self, client_id: str) -> set[Key]:
        return {key for key, login in self._all() if login.client.id == client_id}

    def latest(self, client_id: str) -> Client | None:
        """The client as its most recent login saw it (its role then)."""
        found = None
        for _, login in self._all():
            if login.client.id == client_id:
                found = login.client
        return found

    def matching(self, wanted: Callable[[Login], bool]) -> list[Key]:
        """The connections whose login ``wanted`` picks; those not yet announced are
        marked, so that their CONNECT kicks them too."""
        keys = [key for key, login in self._all() if wanted(login)]
        self._doomed.update(key for key in keys if key in self._pending)
        return keys

    def clear(self) -> None:
        self._connected.clear()
        self._pending.clear()
        self._doomed.clear()

    def __len__(self) -> int:
        return len(self._connected) + len(self._pending)

    def _all(self) -> Iterable[tuple[Key, Login]]:
        yield from self._connected.items()
        yield from self._pending.items()


def of_client(client_id: str) -> Callable[[Login], bool]:
    """Every connection of the client (removed, disabled, role or password changed)."""
    return lambda login: login.client.id == client_id


def of_session(session_id: str) -> Callable[[Login], bool]:
    """The connections that logged in with a token of that session (logout)."""
    return lambda login: login.client.session_id == session_id


def of_certificate(serial: int) -> Callable[[Login], bool]:
    """The connections that logged in with that certificate (revoked)."""
    return lambda login: login.certificate_serial == serial


async def open_connections(
    nc: Any, server_id: str, account: str, page: int = 1024
) -> list[tuple[Key, str, dict[str, Any]]]:
    """The open connections of ``account`` on one server, each with its user (the client
    id, for a login the callout let in) and what the server's events say of it (its
    ``start`` and ``client_type``): ``$SYS.REQ.SERVER.<id>.CONNZ``, page by page."""
    found: list[tuple[Key, str, dict[str, Any]]] = []
    offset = 0
    while True:
        options = {"acc": account, "auth": True, "offset": offset, "limit": page}
        reply = await nc.request(
            f"$SYS.REQ.SERVER.{server_id}.CONNZ", orjson.dumps(options), timeout=KICK_TIMEOUT
        )
        connections = (orjson.loads(reply.data).get("data") or {}).get("connections") or []
        for connection in connections:
            user = connection.get("authorized_user")
            if isinstance(user, str) and isinstance(connection.get("cid"), int):
                info = {"start": connection.get("start"), "client_type": connection.get("type")}
                found.append(((server_id, connection["cid"]), user, info))
        if len(connections) < page:
            return found
        offset += page


async def kick(nc: Any, keys: Iterable[Key], reason: str) -> int:
    """Ask the server(s) to close these connections; how many it closed. A connection
    gone meanwhile answers "no such client": nothing to do."""

    async def one(server_id: str, cid: int) -> bool:
        subject = f"$SYS.REQ.SERVER.{server_id}.KICK"
        try:
            reply = await nc.request(subject, orjson.dumps({"cid": cid}), timeout=KICK_TIMEOUT)
            error = orjson.loads(reply.data).get("error")
        except Exception as exc:  # the server is gone, or restarting: so is the client
            log.warning("kicking NATS connection %s on %s failed: %r", cid, server_id, exc)
            return False
        if error:
            log.debug("kicking NATS connection %s on %s: %s", cid, server_id, error)
            return False
        return True

    keys = list(keys)
    closed = sum(await asyncio.gather(*(one(*key) for key in keys)))
    if keys:
        log.info("closed %d of %d NATS connection(s): %s", closed, len(keys), reason)
    return closed
