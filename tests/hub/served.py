"""The environment for a ``wothub serve`` subprocess in tests: every listener on
127.0.0.1 and a free port, and nothing inherited from the caller's WOTHUB_* settings."""

from __future__ import annotations

import os

LOOPBACK_FREE_PORTS = {
    "WOTHUB_HTTP_HOST": "127.0.0.1",
    "WOTHUB_HTTP_PORT": "0",
    "WOTHUB_MQTT_HOST": "127.0.0.1",
    "WOTHUB_MQTT_PORT": "0",
    "WOTHUB_NATS_HOST": "127.0.0.1",
    "WOTHUB_NATS_PORT": "0",
    "WOTHUB_NATS_WS_PORT": "0",
}


def serve_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOTHUB_")}
    return {**env, **LOOPBACK_FREE_PORTS, **extra}
