"""The ids of the hub's own Things (docs/architecture.md)."""

DIRECTORY_THING = "urn:wothub:directory"
AUTHN_THING = "urn:wothub:authn"
CLIENTS_THING = "urn:wothub:clients"
CERTS_THING = "urn:wothub:certs"
# Things only admins may use.
ADMIN_THINGS = frozenset({CLIENTS_THING, CERTS_THING})
