"""What more than one binding uses: the ASGI/TLS server and web credentials (HTTP and
WebSocket); the receive pipeline, the outbox pump, the bad-message window and the fan-out
encode cache (WebSocket, MQTT, NATS, SSE); listen addresses and public host names."""
