"""Python clients of the hub, one per binding (HTTP, WebSocket, MQTT, NATS)."""
