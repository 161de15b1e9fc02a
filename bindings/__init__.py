"""Protocol edges (http, sse, websocket, mqtt, nats): each translates its wire format
into the hub's message envelope and back. See docs/architecture.md."""
