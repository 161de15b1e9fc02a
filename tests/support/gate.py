"""A TCP relay on 127.0.0.1 that a test opens and shuts: a client connects to the gate's
port and reaches the target port behind it while the gate is open. While it is shut
(or nothing listens behind it) a connection is closed at once, as a hub that is down
refuses it: the client's reconnect is held back until the test opens the gate. Once
``freeze()`` is called, the connections open stay open and nothing more goes through
either way, as a network that drops every packet: neither side sees the end."""

from __future__ import annotations

import asyncio
import contextlib


class Gate:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.is_open = True
        self.frozen = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Gate:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for relay in list(self._relays):
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        await self._server.wait_closed()

    def shut(self) -> None:
        """New connections are closed at once (those open stay)."""
        self.is_open = False

    def open(self) -> None:
        self.is_open = True

    def freeze(self) -> None:
        """From now on the bytes of open connections are read and dropped."""
        self.frozen = True

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        try:
            if not self.is_open:
                return
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(
                    "127.0.0.1", self.target_port
                )
            except OSError:  # nothing listens behind the gate: the hub is down
                return
            try:
                await asyncio.gather(
                    self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
                )
            finally:
                upstream_writer.close()
        finally:
            writer.close()
            self._relays.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Bytes from one side to the other until either side closes."""
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if not self.frozen:
                    writer.write(data)
                    await writer.drain()
        writer.close()
