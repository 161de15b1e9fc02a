"""The ids of the hub's own Things (docs/architecture.md)."""

DIRECTORY_THING = "urn:wothub:directory"
AUTHN_THING = "urn:wothub:authn"
CLIENTS_THING = "urn:wothub:clients"
CERTS_THING = "urn:wothub:certs"
HISTORY_THING = "urn:wothub:history"
RESTORE_THING = "urn:wothub:restore"  # configuration restore per Thing (digitwin.md)
QUERIES_THING = "urn:wothub:queries"  # the directory's listing and search, on every binding
GROUPS_THING = "urn:wothub:groups"
# Things only admins may use.
ADMIN_THINGS = frozenset({CLIENTS_THING, CERTS_THING, HISTORY_THING, RESTORE_THING})
# Things every client may read and invoke: their actions check what each client may do.
OPEN_THINGS = frozenset({AUTHN_THING, QUERIES_THING, GROUPS_THING})
