"""uvicorn with the ASGI TLS extension, served on a socket we bind, inside the hub's loop.

The TLS extension (https://asgi.readthedocs.io/en/latest/extensions.html#tls) puts the
connection's TLS facts in ``scope["extensions"]["tls"]``; uvicorn does not implement it.
``tls_protocol(Base)`` subclasses any uvicorn protocol class (h11, httptools and the three
WebSocket ones): all of them keep the application in ``self.app`` and call it as
``self.app(scope, ...)`` for every request, after building the scope. The subclass's
``connection_made`` reads the TLS facts once from the transport's ``ssl_object`` and
replaces ``self.app`` for that connection with a wrapper that adds them to each scope.
uvicorn's h11 protocol hands a WebSocket upgrade to a new protocol object on the same TLS
transport, so the WebSocket class (``tls_websocket_protocol``) does the same in its own
``connection_made``. Nothing of uvicorn is copied or patched. A plain (not TLS) connection
gets no ``tls`` key, as the spec requires.

The dictionary is made once per connection and shared by its requests: read it, do not
change it. ``client_cert_chain`` holds the client certificate alone (Python's ``ssl``
exposes the rest of a peer's chain only from 3.13; the hub CA signs client certificates
directly, so there is none). ``client_cert_error`` is always None: OpenSSL ends the
handshake when a client presents a certificate the context does not trust, so such a
connection never reaches the application. ``server_cert`` is the PEM given to
``HttpServer(server_cert=...)``, or None (``ssl`` cannot read it back from a context).

The server context: use ``CertificateAuthority.ssl_context_for_server()`` (certs package;
TLS 1.2+, the hub's server certificate, ``CERT_OPTIONAL``, trusting only the hub CA for
client certificates). To require a client certificate, set its ``verify_mode`` to
``ssl.CERT_REQUIRED``. Revocation is not checked in the handshake: pass the PEM to
``CertificateAuthority.verify_client_certificate``.

``HttpServer`` runs a ``uvicorn.Server`` in the running loop. uvicorn's ``Config`` takes
key and certificate paths; its ``ssl_context_factory`` (uvicorn 0.47+) returns our
context instead, which then goes to ``loop.create_server`` like uvicorn's own. We bind
the listening sockets ourselves and pass them to ``Server.serve(sockets=...)``, so the
real port is known before serving (port 0) and ``start`` returns once they listen.
``serve`` would install SIGINT/SIGTERM handlers; the hub owns those signals, so the
server subclass's ``capture_signals`` does nothing and ``stop`` is how it ends: new
connections are refused, idle keep-alive connections are closed at once, requests in
progress get ``shutdown_timeout`` seconds, then their tasks are cancelled and any
connection left is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from uvicorn.config import HTTP_PROTOCOLS, WS_PROTOCOLS
from uvicorn.importer import import_from_string

log = logging.getLogger(__name__)

TLS_VERSIONS = {"TLSv1.3": 0x0304, "TLSv1.2": 0x0303, "TLSv1.1": 0x0302, "TLSv1": 0x0301}

# OpenSSL cipher name -> IANA cipher suite number, filled from SSLContext.get_ciphers(),
# whose "id" carries the two-byte suite number in its low 16 bits.
_cipher_suites: dict[str, int] = {}


def _cipher_suite(ssl_object: ssl.SSLObject) -> int | None:
    cipher = ssl_object.cipher()
    if cipher is None:
        return None
    name = cipher[0]
    if name not in _cipher_suites:
        for entry in ssl_object.context.get_ciphers():
            _cipher_suites[entry["name"]] = entry["id"] & 0xFFFF
    return _cipher_suites.get(name)


def tls_extension(
    transport: asyncio.BaseTransport, server_cert: str | None = None
) -> dict[str, Any] | None:
    """The ASGI TLS extension's dictionary for a connection, or None if not over TLS."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    chain: list[str] = []
    name = error = None
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        chain.append(ssl.DER_cert_to_PEM_cert(der))
        try:
            name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        except ValueError as exc:  # OpenSSL accepted it, cryptography cannot parse it
            error = f"cannot read the client certificate's subject: {exc}"
    return {
        "server_cert": server_cert,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": error,
        "tls_version": TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": _cipher_suite(ssl_object),
    }


# A scope extension of ours: a callable that drops the connection at once. A binding
# uses it for a client that stopped reading, whose socket would otherwise never drain
# (a close frame or transport.close() waits behind the full buffer).
ABORT_EXTENSION = "wothub.abort"


def _with_tls(app: Any, tls: dict[str, Any] | None, abort: Any) -> Any:
    async def app_with_tls(scope: dict[str, Any], receive: Any, send: Any) -> None:
        extensions = scope.setdefault("extensions", {})
        if tls is not None:
            extensions["tls"] = tls
        extensions[ABORT_EXTENSION] = abort
        return await app(scope, receive, send)

    return app_with_tls


class _TlsScope:
    """Mixin for a uvicorn protocol class: the connection's scopes carry the TLS extension.
    ``config.tls_server_cert`` (set by HttpServer; optional) is the server_cert PEM."""

    config: uvicorn.Config
    app: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        tls = tls_extension(transport, getattr(self.config, "tls_server_cert", None))
        abort = getattr(transport, "abort", None)
        self.app = _with_tls(self.app, tls, abort)


class _ReadDeadline:
    """Mixin for a uvicorn HTTP protocol class: a request must arrive in full, head and
    body, within ``config.read_timeout`` seconds (set by HttpServer; None: no limit) of
    the connection being made or of the previous response's end, or the connection is
    closed. Once the request is in, the application takes as long as it needs (SSE
    streams, long polls).

    uvicorn itself waits for ever for a request that never comes or never ends: its
    keep-alive timeout only runs between requests, until the next one's first byte, so
    a client that connects and sends nothing, or half a request, holds a connection.
    And when a response goes out before the request's body was read (a 401, 404, 405 or
    413 answered at once), the rest of the body arriving cancels the keep-alive timeout
    and nothing starts it again: that idle connection stayed open until the client
    closed it. This deadline closes both."""

    config: uvicorn.Config
    transport: asyncio.Transport
    cycle: Any  # uvicorn's RequestResponseCycle of the latest request, None before it
    loop: asyncio.AbstractEventLoop
    _read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._watch_reading()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        self._watch_reading()

    def on_response_complete(self) -> None:
        self._stop_read_deadline()  # the next request's time starts now
        super().on_response_complete()  # type: ignore[misc]
        self._watch_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_read_deadline()
        super().connection_lost(exc)  # type: ignore[misc]

    def _reading(self) -> bool:
        """Whether a request is still to come in full (not: one being answered, or the
        connection handed to a WebSocket protocol)."""
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return False
        cycle = self.cycle
        return cycle is None or cycle.more_body or cycle.response_complete

    def _watch_reading(self) -> None:
        timeout = getattr(self.config, "read_timeout", None)
        if timeout is None:
            return
        if not self._reading():
            self._stop_read_deadline()
        elif self._read_deadline is None:
            self._read_deadline = self.loop.call_later(timeout, self._too_slow)

    def _stop_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _too_slow(self) -> None:
        self._read_deadline = None
        if self._reading():
            log.debug("closing a connection whose request did not arrive in time")
            self.transport.close()


@functools.cache
def tls_protocol(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """``base`` (a uvicorn HTTP or WebSocket protocol class) with the TLS extension."""
    return type(f"Tls{base.__name__}", (_TlsScope, base), {"__module__": __name__})


@functools.cache
def _http_protocol(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    return type(f"Tls{base.__name__}", (_ReadDeadline, _TlsScope, base), {"__module__": __name__})


def tls_http_protocol(http: str | type[asyncio.Protocol] = "auto") -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol named as in ``Config(http=...)``, with the TLS extension
    and the read deadline (``_ReadDeadline``). "auto" is httptools when installed, else
    h11."""
    return _http_protocol(import_from_string(HTTP_PROTOCOLS.get(http, http)))  # type: ignore[arg-type]


def tls_websocket_protocol(
    ws: str | type[asyncio.Protocol] | None = "auto",
) -> type[asyncio.Protocol] | None:
    """uvicorn's WebSocket protocol named as in ``Config(ws=...)``, with the TLS
    extension; None when WebSockets are off ("none") or no library is installed ("auto"
    picks websockets-sansio when ``websockets`` is installed, else wsproto)."""
    path = WS_PROTOCOLS.get(ws, ws) if isinstance(ws, str) else ws
    base = import_from_string(path) if path is not None else None
    return tls_protocol(base) if base is not None else None


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn Server that leaves signal handling to its host and says when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.listening.set()


def _read_pem(server_cert: str | bytes | os.PathLike[str] | None) -> str | None:
    if server_cert is None:
        return None
    if isinstance(server_cert, bytes):
        return server_cert.decode("ascii")
    if isinstance(server_cert, str) and server_cert.lstrip().startswith("-----BEGIN"):
        return server_cert
    return Path(server_cert).read_text("ascii")


def _bind(host: str | None, port: int, reuse_port: bool = False) -> list[socket.socket]:
    """One listening-ready socket per address of ``host``; with port 0, the first one's
    port for all of them. ``reuse_port``: several processes may bind the same port
    (SO_REUSEPORT), and the kernel spreads the connections over them."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen: set[tuple[Any, ...]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address[0]) in seen:
                continue
            seen.add((family, address[0]))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class HttpServer:
    """An ASGI app served by uvicorn over TLS (or plain HTTP when ``ssl_context`` is None,
    for tests and loopback) in the running event loop.

    ``server_cert`` is reported as the TLS extension's ``server_cert``: PEM (str or
    bytes) or the path of a PEM file. ``shutdown_timeout`` bounds how long ``stop`` lets
    requests in progress finish. ``read_timeout``: seconds a request has to arrive in
    full (``_ReadDeadline``; None: no limit). ``reuse_port``: other processes may serve
    the same port (SO_REUSEPORT; the hub's workers). Other keyword arguments go to
    ``uvicorn.Config``
    (``limit_concurrency``, ``timeout_keep_alive``, ``log_level``, ``ws``,
    ``ws_max_size``...); ``http`` and ``ws`` name uvicorn's protocols as there and get
    the TLS extension. Defaults that differ from uvicorn's: ``log_config=None`` (the
    hub's logging applies; uvicorn's would replace the handlers of its loggers) and
    ``proxy_headers=False`` (the hub terminates TLS itself, so no X-Forwarded-* header
    is trusted, not even from loopback).
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_cert: str | bytes | os.PathLike[str] | None = None,
        shutdown_timeout: float = 5.0,
        read_timeout: float | None = None,
        reuse_port: bool = False,
        **config: Any,
    ) -> None:
        http = tls_http_protocol(config.pop("http", "auto"))
        ws = tls_websocket_protocol(config.pop("ws", "auto"))
        config.setdefault("log_config", None)
        config.setdefault("proxy_headers", False)
        config.setdefault("timeout_graceful_shutdown", shutdown_timeout)
        if ssl_context is not None:
            config["ssl_context_factory"] = lambda _config, _default: ssl_context
        self.host, self.requested_port = host, port
        self.reuse_port = reuse_port
        self.ssl_context = ssl_context
        self.config = uvicorn.Config(
            app, host=host, port=port, http=http, ws=ws or "none", **config
        )
        self.config.tls_server_cert = _read_pem(server_cert)  # type: ignore[attr-defined]
        self.config.read_timeout = read_timeout  # type: ignore[attr-defined]
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._sockets: list[socket.socket] = []
        self.addresses: list[tuple[str, int]] = []

    @property
    def port(self) -> int | None:
        """The bound port (the real one when asked for port 0); None before ``start``."""
        return self.addresses[0][1] if self.addresses else None

    @property
    def url(self) -> str:
        """The base URL of the first bound address, e.g. ``https://127.0.0.1:8443``."""
        if not self.addresses:
            raise RuntimeError("the server is not started")
        return self._url(self.addresses[0])

    @property
    def open_connections(self) -> int:
        """Connections open now: HTTP (idle keep-alive ones included) and WebSocket."""
        return len(self._server.server_state.connections) if self._server is not None else 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Bind, run the app's lifespan startup, and return once listening. Raises
        OSError if the address cannot be bound, RuntimeError if startup failed."""
        if self._task is not None:
            raise RuntimeError("the server was already started")
        self._sockets = _bind(self.host, self.requested_port, self.reuse_port)
        self.addresses = [sock.getsockname()[:2] for sock in self._sockets]
        self._server = server = _EmbeddedServer(self.config)
        self._task = asyncio.create_task(self._serve(server), name=f"http server {self.url}")
        listening = asyncio.create_task(server.listening.wait())
        try:
            await asyncio.wait({self._task, listening}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self._task.cancel()
            raise
        finally:
            listening.cancel()
        if not server.listening.is_set():
            await self._task  # raises why it stopped
            raise RuntimeError("the HTTP server stopped during startup")
        log.info("serving on %s", " ".join(self._url(address) for address in self.addresses))

    def _url(self, address: tuple[str, int]) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        host, port = address
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    async def _serve(self, server: _EmbeddedServer) -> None:
        try:
            await server.serve(sockets=self._sockets)
        except SystemExit as exc:  # uvicorn exits the process when startup fails
            raise RuntimeError(f"the HTTP server failed to start (exit {exc.code})") from None
        finally:
            for sock in self._sockets:
                sock.close()

    async def stop(self) -> None:
        """Stop serving: refuse new connections, close idle ones, let requests in progress
        finish for up to ``shutdown_timeout`` seconds, then cancel them. Idempotent."""
        if self._task is None or self._server is None:  # never started (start sets both)
            return
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._stop(self._task, self._server))
        await asyncio.shield(self._stopping)

    async def _stop(self, task: asyncio.Task[None], server: _EmbeddedServer) -> None:
        if task.done():  # startup failed, and start() raised why
            return
        server.should_exit = True
        # uvicorn waits timeout_graceful_shutdown, cancels what is left, then runs the
        # lifespan shutdown; the margin bounds that last part.
        grace = self.config.timeout_graceful_shutdown or 0
        try:
            await asyncio.wait_for(asyncio.shield(task), grace + 5.0)
        except TimeoutError:
            log.warning("the HTTP server did not stop in time; cancelling it")
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except Exception:
            log.exception("the HTTP server failed")
        for connection in list(server.server_state.connections):
            connection.transport.close()  # left after the timeout cancelled their tasks

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
