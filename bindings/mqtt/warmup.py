"""One MQTT connection at start: nats-server creates an account's MQTT streams at its
first MQTT CONNECT, and the hub writes retained values and queued requests into them.
A bare MQTT 3.1.1 CONNECT / CONNACK / DISCONNECT with the managed server's warm-up user."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct


def _text(value: str) -> bytes:
    data = value.encode()
    return struct.pack("!H", len(data)) + data


def connect_packet(client_id: str, username: str, password: str) -> bytes:
    # protocol name, level 4 (3.1.1), flags: username, password, clean session; keepalive
    variable = _text("MQTT") + bytes([4, 0b11000010]) + struct.pack("!H", 30)
    body = variable + _text(client_id) + _text(username) + _text(password)
    return bytes([0x10]) + _remaining_length(len(body)) + body


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


async def connect_once(
    host: str,
    port: int,
    username: str,
    password: str,
    tls: ssl.SSLContext | None,
    timeout: float = 5.0,
) -> int:
    """CONNECT, read the CONNACK, DISCONNECT; the CONNACK return code (0: accepted)."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            host, port, ssl=tls, server_hostname=None if tls is None else host
        )
        try:
            writer.write(connect_packet(username, username, password))
            await writer.drain()
            connack = await reader.readexactly(4)
            writer.write(b"\xe0\x00")  # DISCONNECT
            await writer.drain()
            return connack[3]
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
