"""The MQTT binding: MQTT clients on the managed nats-server's MQTT listener, through
the NATS binding's pipeline; topic scheme in docs/mqtt.md."""

from .forms import MqttForms
from .server import MqttBinding

__all__ = ["MqttBinding", "MqttForms"]
