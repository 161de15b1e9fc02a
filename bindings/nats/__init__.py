"""The NATS binding: a managed (or external) nats-server, auth callout answered by the
hub, and the envelope on the subject scheme of docs/nats.md."""

from .binding import NatsBinding
from .forms import NatsForms
from .server import NatsKeys, NatsServer, find_binary

__all__ = ["NatsBinding", "NatsForms", "NatsKeys", "NatsServer", "find_binary"]
