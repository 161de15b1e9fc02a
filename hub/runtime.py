"""Start the hub's parts, wait for a stop signal, stop them in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

from auth.authorizer import RoleAuthorizer
from auth.service import AuthService
from bindings.http.app import HttpBinding
from bindings.http.tls_server import HttpServer
from bindings.mqtt import MqttBinding
from bindings.nats import NatsBinding
from bindings.websocket.forms import WebSocketForms
from bindings.websocket.server import WebSocketBinding
from bucketstore import BucketStore, open_store
from certs import CertificateAuthority
from digitwin.core import DigiTwin

from .config import Config
from .hub_things import authn_thing, certs_thing, clients_thing
from .listeners import remove_listeners, write_listeners
from .operations import CountRefusals, Operations
from .router import Router

log = logging.getLogger("wothub")
_ANY_ADDRESS = ("", "0.0.0.0", "::")


class Hub:
    """The hub's parts composed on one store and home; ``start`` opens the listeners."""

    def __init__(self, config: Config, store: BucketStore) -> None:
        self.config = config
        self.store = store
        config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.auth = AuthService(store, config.home, config.auth_config())
        self.ca = CertificateAuthority.load_or_create(config.home, store.bucket("certs"))
        self.server_certificate = self.ca.ensure_server_certificate(list(config.server_names))
        self.twin = DigiTwin(store)
        self.router = Router(
            self.twin,
            RoleAuthorizer(self.auth.accounts, self.auth.sessions),
            flush_interval=config.flush_interval,
            log_size=config.notification_log_size,
            limits=config.limits(),
        )
        # Credentials refused on any binding (HTTP 401 answers are counted apart).
        self.auth.on_refused = lambda: self.router.metrics.refused(401, "invalid_credentials")
        self.started = False  # all listeners up (GET /ready)
        for service in (
            authn_thing(self.auth),
            clients_thing(self.auth, self.ca),
            certs_thing(self.ca, self.auth),
        ):
            self.router.add_service(service)
        self.http = HttpBinding(
            self.router,
            self.auth,
            self.ca.verify_client_certificate,
            max_body_bytes=config.max_body_bytes,
            sync_wait=config.sync_wait,
            action_timeout=config.action_timeout,
        )
        self.websocket = WebSocketBinding(
            self.router,
            self.http.context.credentials,
            WebSocketForms(self.http.forms.security_definitions),
            max_message_bytes=config.max_body_bytes,
        )
        self.mqtt = (
            MqttBinding(
                self.router,
                self.auth,
                self.ca,
                host=config.mqtt_host,
                port=config.mqtt_port,
                plain_port=config.mqtt_plain_port,
                max_message_bytes=config.max_body_bytes,
                public_host=urlsplit(config.public_url).hostname if config.public_url else None,
                security=self.http.forms.security_definitions,
                connect_timeout=config.mqtt_connect_timeout,
                max_connections=config.mqtt_max_connections,
            )
            if config.mqtt_enabled
            else None
        )
        self.nats = (
            NatsBinding(
                self.router,
                self.auth,
                self.ca,
                config.home,
                external_url=config.nats_url,
                host=config.nats_host,
                port=config.nats_port,
                ws_port=config.nats_ws_port,
                max_message_bytes=config.max_body_bytes,
                auth_timeout=config.nats_auth_timeout,
                max_connections=config.nats_max_connections,
            )
            if config.nats_enabled
            else None
        )
        self.operations = Operations(self)  # /health, /ready, /metrics, backups
        app = self.http.app([*self.websocket.routes(), *self.operations.routes()])
        self.http_server = HttpServer(
            CountRefusals(app, self.router.metrics),
            config.http_host,
            config.http_port,
            ssl_context=self.ca.ssl_context_for_server(),
            server_cert=self.server_certificate.cert_path,
            # Frames up to twice the limit get an error response naming it; larger
            # ones are cut off by the server (close code 1009).
            ws_max_size=2 * config.max_body_bytes,
            ws_ping_interval=20.0,
            ws_ping_timeout=20.0,
            read_timeout=config.http_read_timeout,
            timeout_keep_alive=config.http_keep_alive_timeout,
            # uvicorn answers 503 once this many are open, the asking one included.
            limit_concurrency=config.http_max_connections + 1,
        )

    def first_run(self) -> None:
        """Create the admin client if there is none, telling where its password is."""
        password_file = self.auth.ensure_admin()
        if password_file is not None:
            log.warning(
                "first run: created client 'admin'; its password is in %s (readable by "
                "you only). Log in, change it, then delete that file.",
                password_file,
            )

    @property
    def base_url(self) -> str:
        """Where consumers reach the HTTPS API (the forms in twin TDs point there)."""
        if self.config.public_url:
            return self.config.public_url
        host = self.config.http_host
        if host in _ANY_ADDRESS:
            host = socket.gethostname()
        return f"https://{host}:{self.http_server.port}"

    async def start(self) -> None:
        await self.router.start()
        with _listening("HTTPS", self.config.http_host, self.config.http_port):
            await self.http_server.start()
        self.http.set_base_url(self.base_url)
        self.websocket.forms.set_base_url(self.base_url)
        self.twin.add_form_provider(self.http.forms)
        self.twin.add_form_provider(self.websocket.forms)
        listeners: dict[str, dict] = {
            "https": {
                "host": self.http_server.addresses[0][0],
                "port": self.http_server.port,
                "url": self.base_url,
                "local_url": self.http_server.url,
            }
        }
        buses = (
            ("MQTT", self.mqtt, self.config.mqtt_host, self.config.mqtt_port),
            ("NATS", self.nats, self.config.nats_host, self.config.nats_port),
        )
        for name, bus, host, port in buses:
            if bus is not None:
                with _listening(name, host, port):
                    await bus.start()
                self.twin.add_form_provider(bus.forms)
                listeners.update(bus.listeners())
                log.info("%s on %s", bus.forms.name.upper(), bus.listeners())
        write_listeners(self.config.home, listeners)
        self.started = True
        log.info(
            "HTTPS (directory, WoT HTTP profile, SSE) on %s, WebSocket on %s",
            self.http_server.url,
            self.websocket.forms.url,
        )

    async def stop(self) -> None:
        self.started = False
        try:
            for bus in (self.nats, self.mqtt):
                if bus is not None:
                    await bus.stop()
            self.http.context.close_streams()  # or open streams hold the server up
            self.websocket.close_all()
            await self.http_server.stop()
        finally:
            remove_listeners(self.config.home)
            await self.router.stop()
            self.twin.close()


def _reach(config: Config) -> str:
    """Who can connect, for the start line: loopback is the default until opened."""
    if config.only_loopback:
        return (
            "only this machine can connect (host 127.0.0.1, the default): set host = "
            '"0.0.0.0" in wothub.toml (or WOTHUB_HOST, --host) to let devices on the network in'
        )
    return "devices on the network can connect (TLS and authentication on every listener)"


class CannotListen(OSError):
    """A listener could not bind its address (taken, or not this machine's)."""


@contextlib.contextmanager
def _listening(name: str, host: str, port: int) -> Iterator[None]:
    """Names the listener, its address and its port in a bind error."""
    try:
        yield
    except CannotListen:
        raise
    except OSError as exc:
        where = exc.filename or (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise CannotListen(f"the {name} listener cannot listen on {where}: {reason}") from exc


async def _run_until_signal(hub: Hub) -> None:
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[str] = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda s=sig: stopped.done() or stopped.set_result(s.name))
    try:
        await hub.start()
        # Logged only once the handlers are in place, so "started" means "stoppable".
        log.info(
            "wothub started: %s store at %s; CA and server certificate in %s; "
            "listeners in %s; %s; press Ctrl-C to stop",
            hub.config.store_backend,
            hub.config.store_path,
            hub.config.home / "certs",
            hub.config.home / "listeners.json",
            _reach(hub.config),
        )
        if not hub.config.public_url:
            log.info(
                "twin TDs and Location headers point at %s; if clients elsewhere reach the "
                "hub by another name or address, set public_url (WOTHUB_PUBLIC_URL, "
                "--public-url) and add the name to server_names",
                hub.base_url,
            )
        log.info("received %s, stopping", await stopped)
    finally:
        await hub.stop()


def serve(config: Config) -> int:
    """Run until SIGINT or SIGTERM; return the process exit code."""
    # The home holds the CA and keys: private before anything is created in it.
    config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    config.home.chmod(0o700)
    store = open_store(config.store_path, config.store_backend)
    try:
        hub = Hub(config, store)
        hub.first_run()
        asyncio.run(_run_until_signal(hub))
    except OSError as exc:  # e.g. the port is taken
        log.error(
            "cannot start: %s. The hub's home %s (CA, keys, admin password) is kept and "
            "used again at the next start",
            exc,
            config.home,
        )
        return 1
    finally:
        store.close()
    log.info("wothub stopped")
    return 0
