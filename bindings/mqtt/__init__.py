"""The MQTT binding: an embedded broker (amqtt) whose messages all go through the
router; topic scheme in docs/mqtt.md."""

from .forms import MqttForms
from .server import MqttBinding

__all__ = ["MqttBinding", "MqttForms"]
