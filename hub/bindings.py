"""The bindings the hub runs, found by name (as bucket-store backends are).

Each is registered with a factory that builds it from the hub's parts and settings, or
returns None when the configuration turns it off, and with the address it listens on
(None for a binding served by the hub's HTTPS server). Registration order is the order
bindings are built and started (stopped together, in reverse); a factory may use the
bindings built before it (the WebSocket binding takes the HTTP binding's credentials).
Another binding is added with ``register_binding`` before the hub is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from auth.service import AuthService
from bindings.common.hosts import public_host, url_host
from bindings.http.app import HttpBinding
from bindings.mqtt import MqttBinding
from bindings.nats import NatsBinding
from bindings.nats.server import MqttListener, NatsServer
from bindings.websocket.forms import WebSocketForms
from bindings.websocket.server import WebSocketBinding
from certs.authority import CertificateAuthority
from core.router import Router

from .config import Config


class HubParts(Protocol):
    """What a factory builds a binding from (``hub.runtime.Hub`` has them)."""

    config: Config
    router: Router
    auth: AuthService
    ca: CertificateAuthority
    node_server: NatsServer | None  # a cluster node's nats-server, already running


# factory(hub, the bindings built so far by name) -> the binding, or None when turned off
BindingFactory = Callable[[HubParts, dict[str, Any]], Any]
# Where a binding listens, from the configuration: (host, port), named in a bind error.
Address = Callable[[Config], tuple[str, int]]


@dataclass(frozen=True)
class Registration:
    name: str
    factory: BindingFactory
    address: Address | None  # None: served by the hub's HTTPS server


_registered: dict[str, Registration] = {}


def register_binding(name: str, factory: BindingFactory, *, address: Address | None) -> None:
    """Make ``factory`` build binding ``name`` (after those registered before it)."""
    _registered[name] = Registration(name, factory, address)


def binding_names() -> list[str]:
    """Every registered binding, in the order they are built and started."""
    return list(_registered)


def registration(name: str) -> Registration:
    try:
        return _registered[name]
    except KeyError:
        raise KeyError(f"unknown binding {name!r}; known: {', '.join(_registered)}") from None


def build_bindings(hub: HubParts) -> dict[str, Any]:
    """Every registered binding the configuration turns on, by name, in order."""
    built: dict[str, Any] = {}
    for entry in _registered.values():
        binding = entry.factory(hub, built)
        if binding is not None:
            built[entry.name] = binding
    return built


# -- the built-in bindings -------------------------------------------------------------------


def _http(hub: HubParts, built: dict[str, Any]) -> HttpBinding:
    config = hub.config
    return HttpBinding(
        hub.router,
        hub.auth,
        hub.ca.verify_client_certificate,
        max_body_bytes=config.max_body_bytes,
        sync_wait=config.sync_wait,
        action_timeout=config.action_timeout,
    )


def _websocket(hub: HubParts, built: dict[str, Any]) -> WebSocketBinding:
    http: HttpBinding = built["http"]
    return WebSocketBinding(
        hub.router,
        http.context.credentials,
        WebSocketForms(http.forms.security_definitions),
        max_message_bytes=hub.config.max_body_bytes,
    )


def _nats(hub: HubParts, built: dict[str, Any]) -> NatsBinding | None:
    config = hub.config
    if not (config.nats_enabled or config.mqtt_enabled):  # MQTT rides on nats-server
        return None
    return NatsBinding(
        hub.router,
        hub.auth,
        hub.ca,
        config.home,
        external_url=config.nats_url,
        host=config.nats_host,
        port=config.nats_port,
        ws_port=config.nats_ws_port,
        max_message_bytes=config.max_body_bytes,
        auth_timeout=config.nats_auth_timeout,
        max_connections=config.nats_max_connections,
        server=hub.node_server,
        # A cluster node hands the other nodes' notifications to its own subscribers.
        follow_other_nodes=config.cluster_mode,
        # and handles the messages of the agents connected at its own nats-server; a
        # worker takes its partition of the clients' messages instead (hub/workers.py).
        route_agents=config.cluster_mode and not config.worker,
        partition=(config.worker - 1, config.workers) if config.worker else None,
        public_url=nats_public_url(config) if config.worker else None,
    )


def nats_public_url(config: Config) -> str:
    """The NATS URL in a worker's twin TDs: its parent's nats-server, as clients reach it
    (the worker itself connects to it on loopback, as to an external server)."""
    assert config.nats_host is not None
    return f"nats://{url_host(public_host(config.nats_host))}:{config.nats_port}"


def _mqtt(hub: HubParts, built: dict[str, Any]) -> MqttBinding | None:
    """MQTT rides on the NATS binding: nats-server's MQTT listener (docs/mqtt.md)."""
    config = hub.config
    if not config.mqtt_enabled:
        return None
    nats: NatsBinding | None = built.get("nats")
    if nats is None:
        raise ValueError("MQTT needs the NATS binding (nats-server is the MQTT broker)")
    listener = mqtt_listener(config)
    assert listener is not None
    return MqttBinding(
        nats,
        nats.server.mqtt if nats.server is not None and nats.server.mqtt else listener,
        public_host=urlsplit(config.public_url).hostname if config.public_url else None,
        security=built["http"].forms.security_definitions,
    )


def mqtt_listener(config: Config) -> MqttListener | None:
    """The managed nats-server's MQTT listener as configured; None with MQTT off."""
    if not config.mqtt_enabled:
        return None
    if config.mqtt_plain_port is not None:  # plain MQTT, loopback only
        return MqttListener("127.0.0.1", config.mqtt_plain_port, tls=False)
    assert config.mqtt_host is not None
    return MqttListener(
        config.mqtt_host, config.mqtt_port, client_certificate=config.mqtt_client_certificate
    )


def _mqtt_address(config: Config) -> tuple[str, int]:
    if config.mqtt_plain_port is not None:
        return ("127.0.0.1", config.mqtt_plain_port)
    return (config.mqtt_host or config.host, config.mqtt_port)


register_binding("http", _http, address=None)
register_binding("websocket", _websocket, address=None)
register_binding("nats", _nats, address=lambda config: (config.nats_host, config.nats_port))
# After NATS: it sets the NATS binding's MQTT listener before that binding starts, and
# starts (waits for the MQTT streams) after it.
register_binding("mqtt", _mqtt, address=_mqtt_address)
