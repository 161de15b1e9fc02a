"""Protocol edges (http, sse, websocket, mqtt, nats): each translates its wire format
into the hub's message envelope and back. Filled in by later work; see DESIGN.md."""
