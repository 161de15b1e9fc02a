"""Who may do what: the router's questions to the ``Authorizer``, with the Thing's owner
looked up in the twin. A refusal is a 403 problem naming the operation, and is logged."""

from __future__ import annotations

import logging

from auth.accounts import HUB_ID
from digitwin.core import DigiTwin
from vocabulary import operations as ops
from vocabulary.problems import Forbidden
from vocabulary.things import DIRECTORY_THING

from .authz import Authorizer, Client

log = logging.getLogger("wothub.router")

# A Thing owned by the hub (the directory itself), to ask whether a client may read
# Things it does not own.
_ANY_THING = DIRECTORY_THING


class Access:
    def __init__(self, twin: DigiTwin, authorizer: Authorizer) -> None:
        self.twin = twin
        self.authorizer = authorizer

    def require(
        self, client: Client, operation: str, thing_id: str | None, owner: str | None
    ) -> None:
        """Forbidden unless the client may perform the operation on the owner's Thing."""
        reason = self.authorizer.authorize(client, operation, thing_id, owner)
        if reason is not None:
            log.warning(
                "refused %s (%s): %s on %s: %s", client.id, client.role, operation, thing_id, reason
            )
            raise Forbidden(reason, operation=operation)

    def require_thing(self, client: Client, operation: str, thing_id: str) -> None:
        """``require`` with the Thing's owner as the twin knows it."""
        self.require(client, operation, thing_id, self.twin.owner_of(thing_id))

    def reads_every_thing(self, client: Client) -> bool:
        """May the client read a Thing it does not own? (Agents may not.)"""
        return self.authorizer.authorize(client, ops.READ_THING, _ANY_THING, HUB_ID) is None

    def overrides_ownership(self, client: Client) -> bool:
        return self.authorizer.overrides_ownership(client)
