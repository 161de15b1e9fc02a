"""The binding contract: what a binding provides to the hub, and the only calls it may
make on the core.

A binding translates one protocol into the message envelope and back. It receives the
core as ``Core`` (``core.router.Router`` is the implementation) and never reaches past
it: no twin, authorizer, subscription index or notification log of its own. The hub
(hub/runtime.py) builds bindings by name (hub/bindings.py), starts and stops them, gives
their forms to the twin TDs and writes their listeners to listeners.json.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from digitwin.selection import Selection
from digitwin.twintd import FormProvider
from vocabulary.envelope import Message
from vocabulary.identity import Client

from .connection import Connection
from .groups import GroupOps


class Core(Protocol):
    """The core as a binding sees it (each method is documented on ``Router``)."""

    @property
    def groups(self) -> GroupOps: ...  # groups of Things: administration, table, writes

    # Connections: one per client connection; a binding writes out what
    # ``await connection.next()`` yields and disconnects when the client goes.
    def connect(
        self,
        client: Client,
        binding: str,
        *,
        receives_requests: bool = True,
        counted: bool = True,
    ) -> Connection: ...
    def connect_relay(self, binding: str, *, max_notifications: int = 100_000) -> Connection: ...
    def disconnect(self, connection: Connection) -> None: ...
    def admit(self, client: Client) -> None: ...

    # Messages: every one the client sends; the answer, if any, comes back.
    def handle(self, connection: Connection, message: Message) -> Message | None: ...

    # Subscriptions and the notification log.
    def subscribe(
        self,
        connection: Connection,
        kind: str,
        thing_id: str | None = None,
        name: str | None = None,
    ) -> None: ...
    def replace_subscriptions(
        self, connection: Connection, wanted: Iterable[tuple[str, str | None, str | None]]
    ) -> None: ...
    def replay(self, connection: Connection, after: int) -> bool: ...
    @property
    def epoch(self) -> str: ...
    # Cluster mode: another node's twin notification, to this node's subscribers.
    def publish_from_other_node(self, message: Message) -> None: ...
    def watched(self) -> bool: ...
    def on_watch(self, callback: Callable[[], None]) -> None: ...
    def notification_gap(self) -> None: ...
    def on_notifications_ready(self, ready: Callable[[], Awaitable[None]]) -> None: ...
    async def notifications_ready(self) -> None: ...

    # Actions and writes a binding answers synchronously or in several parts.
    def wait_for(self, record_id: str) -> asyncio.Future[dict[str, Any]]: ...
    def stop_waiting(self, record_id: str, future: asyncio.Future[dict[str, Any]]) -> None: ...
    def request_status(self, record_id: str) -> dict[str, Any]: ...
    def check_writes(self, client: Client, thing_id: str, values: dict[str, Any]) -> None: ...
    def requests_by_name(
        self, client: Client, thing_id: str, operation: str
    ) -> dict[str, list[dict[str, Any]]]: ...

    # The directory, for what a binding serves without a message (checked, admitted).
    def list_things(
        self,
        client: Client,
        offset: int = 0,
        limit: int | None = None,
        selection: Selection | None = None,
    ) -> tuple[list[dict[str, Any]], int]: ...
    def search_things(
        self, client: Client, query: str, selection: Selection | None = None
    ) -> list[Any]: ...
    def thing_description(
        self, client: Client, thing_id: str, *, admit: bool = True
    ) -> dict[str, Any]: ...
    def patch_thing(self, client: Client, thing_id: str, patch: Any) -> None: ...
    def property_state(self, client: Client, thing_id: str, name: str) -> dict[str, Any]: ...
    def thing_presence(self, client: Client, thing_id: str) -> dict[str, Any]: ...

    # The twin, read-only and unchecked: the binding checks with ``authorize``.
    def twin_td(self, thing_id: str) -> dict[str, Any] | None: ...
    def owner_of(self, thing_id: str) -> str | None: ...
    def twins_after(
        self, after: str | None, limit: int
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]: ...
    def read_all_properties(self, thing_id: str) -> dict[str, dict[str, Any]]: ...
    def authorize(
        self, client: Client, operation: str, thing_id: str | None, owner: str | None
    ) -> str | None: ...


class Binding(Protocol):
    """What a binding provides to the hub."""

    name: str  # its name in twin TDs, listeners.json and the metrics ("mqtt", ...)
    forms: FormProvider  # its forms and security definitions in every twin TD

    async def start(self) -> None:
        """Open its listeners (or its connection to a broker)."""
        ...

    async def stop(self) -> None:
        """Close them; connections end, the core is told of each."""
        ...

    def listeners(self) -> dict[str, dict[str, Any]]:
        """Where clients reach it, for listeners.json: {scheme: {"host", "port", "url"}}."""
        ...


class ServesHttp(Protocol):
    """A binding served by the hub's HTTPS server rather than a listener of its own."""

    def routes(self) -> list[Any]:
        """Its Starlette routes, mounted in the hub's HTTPS app."""
        ...
