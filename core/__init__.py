"""The hub's core: the router between bindings and the twin, by flow, and the contract a
binding implements."""
