"""The WebSocket binding: the message envelope both ways on one connection (W3C Web
Thing Protocol draft, subprotocol ``webthingprotocol``), for agents and consumers."""
