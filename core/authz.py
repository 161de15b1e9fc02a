"""Who is asking, and the interface the router asks before every operation.

The real rules (roles, ownership, sessions) come from ``auth``; the router only needs an
object with these two methods.
"""

from __future__ import annotations

from typing import Protocol

from vocabulary.identity import Client

__all__ = ["Authorizer", "Client"]


class Authorizer(Protocol):
    def authorize(
        self, client: Client, operation: str, thing_id: str | None, owner: str | None
    ) -> str | None:
        """None when ``client`` may perform ``operation``; otherwise why not. It may
        raise ``Unauthorized`` instead when the client itself is no longer valid.

        ``operation`` is a WoT operation name, a hub operation (updatething, ...) or a
        report permission (digitwin.operations.REPORT_*, ANSWER_REQUEST). ``owner`` is
        the client that owns the object: the Thing's agent, or for ``cancelaction`` the
        client that invoked the action. ``thing_id`` is None for hub-wide requests.
        """
        ...

    def overrides_ownership(self, client: Client) -> bool:
        """True when ``client`` may change TDs that other clients registered."""
        ...
