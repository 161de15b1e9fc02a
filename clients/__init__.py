"""The Python client library of the hub: ``connect`` (clients/api.py) gives one API over
every binding; the binding clients (HTTP, WebSocket, MQTT, NATS) are its transports."""

from .api import ActionHandle, ConsumedThing, History, Hub, Subscription, connect
from .device import ExposedThing

__all__ = [
    "ActionHandle",
    "ConsumedThing",
    "ExposedThing",
    "History",
    "Hub",
    "Subscription",
    "connect",
]
