"""The router's Authorizer: the role table of ``roles`` plus ownership and the state of
the client behind each request.

The account and session are looked up on every request (both are cached in memory), so
removing or disabling a client, ending its session or changing its role applies to its
very next request on every binding, not only when its token expires.
"""

from __future__ import annotations

from vocabulary import operations as ops
from vocabulary.identity import Client
from vocabulary.things import ADMIN_THINGS, OPEN_THINGS

from .accounts import Accounts
from .errors import AuthenticationFailed
from .roles import ADMIN, AGENT, PERMISSIONS
from .sessions import Sessions

# Operations only allowed on what the client owns (for cancelaction, the owner is the
# client that invoked the action).
_OWN_ONLY = frozenset(
    {
        ops.DELETE_THING,
        ops.REPORT_PROPERTY,
        ops.REPORT_EVENT,
        ops.ANSWER_REQUEST,
        ops.CANCEL_ACTION,
    }
)


class RoleAuthorizer:
    def __init__(self, accounts: Accounts, sessions: Sessions) -> None:
        self._accounts = accounts
        self._sessions = sessions

    def _current_role(self, client: Client) -> str:
        account = self._accounts.get(client.id)
        if account is None or not account.enabled:
            raise AuthenticationFailed(f"client {client.id!r} was removed or disabled")
        if client.session_id is not None:
            session = self._sessions.get(client.session_id)
            if session is None or not session.valid():
                raise AuthenticationFailed("the session has ended; log in again")
        return account.role

    def authorize(
        self, client: Client, operation: str, thing_id: str | None, owner: str | None
    ) -> str | None:
        role = self._current_role(client)
        if role == ADMIN:
            return None
        if thing_id in ADMIN_THINGS:
            return f"only administrators may use {thing_id}"
        if thing_id in OPEN_THINGS and operation in (ops.INVOKE_ACTION, ops.READ_THING):
            return None  # refresh, logout, queries, groups: each action checks the client
        if operation not in PERMISSIONS.get(role, ()):
            return f"role {role} may not {operation}"
        if thing_id is None:
            return None  # subscriptions to every Thing are filtered Thing by Thing
        if operation in _OWN_ONLY and owner != client.id:
            return f"{operation} on {thing_id} is only for its owner"
        if role == AGENT and operation != ops.UPDATE_THING and owner != client.id:
            return f"agent {client.id} may only act on its own Things"
        return None

    def overrides_ownership(self, client: Client) -> bool:
        account = self._accounts.get(client.id)
        return account is not None and account.enabled and account.role == ADMIN
