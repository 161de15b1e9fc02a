"""The MQTT binding: MQTT 3.1.1 clients on the managed nats-server's MQTT listener.

nats-server is the one broker (docs/architecture.md): an MQTT PUBLISH on ``a/b/c`` is a
NATS message on ``a.b.c``, so MQTT agents and consumers go through the NATS binding's one
receive pipeline, its presence (CONNECT / DISCONNECT events) and its twin publisher; logins
go to the same auth callout, and the callout's subject permissions decide what each client
may publish and subscribe to. What stays here is only MQTT's own: the listener's settings,
the ``mqtts://`` forms of twin TDs, ``listeners.json``, and the start-up wait until the
server's MQTT streams exist and hold the retained values (``NatsBinding.mqtt_warm_up``),
and the twins' values written as retained again from the twin (bindings/mqtt/restore.py).
Retained twin values and QoS 1 requests: bindings/mqtt/bus.py.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bindings.common.hosts import public_host, url_host

from .forms import MqttForms

if TYPE_CHECKING:
    from bindings.nats.binding import NatsBinding
    from bindings.nats.server import MqttListener

log = logging.getLogger("wothub.mqtt")


class MqttBinding:
    def __init__(
        self,
        nats: NatsBinding,
        listener: MqttListener,
        *,
        public_host: str | None = None,
        security: Any = None,
    ) -> None:
        self.nats = nats
        self.listener = listener
        nats.mqtt = listener  # the managed server gets its mqtt {} block from it
        self.public_host = public_host
        self.forms = MqttForms(security=security)
        self.ready = False

    @property
    def host(self) -> str:
        return self.listener.host

    @property
    def port(self) -> int:
        listener = self.nats.mqtt or self.listener  # the port picked at start, if 0
        return listener.port

    @property
    def tls(self) -> bool:
        return self.listener.tls

    async def start(self) -> None:
        """After the NATS binding's start: the MQTT listener is up once its streams are;
        then the twins' latest values are written as retained again, in the background."""
        if await self.nats.mqtt_warm_up():
            self.nats.restore_retained()
        self.ready = True
        self.forms.set_base_url(self.url)
        log.info("MQTT on %s:%d (%s)", self.host, self.port, "TLS" if self.tls else "plain")

    async def stop(self) -> None:
        self.ready = False  # the NATS binding stops the server

    @property
    def public_name(self) -> str:
        return public_host(self.host, self.public_host)

    @property
    def url(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{url_host(self.public_name)}:{self.port}"

    def listeners(self) -> dict[str, dict[str, Any]]:
        entry = {"host": self.host, "port": self.port, "url": self.url}
        if self.tls:
            entry["client_certificate"] = self.listener.client_certificate
        return {"mqtts" if self.tls else "mqtt": entry}
