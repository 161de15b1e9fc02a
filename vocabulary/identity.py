"""Who a client is: its id, its role, and the session its token belongs to.

The role names live here because every layer names them; what each role may do is
``auth.roles``'s business.
"""

from __future__ import annotations

from dataclasses import dataclass

VIEWER, OPERATOR, MANAGER, ADMIN, AGENT, SERVICE = (
    "viewer",
    "operator",
    "manager",
    "admin",
    "agent",
    "service",
)
ROLES = (VIEWER, OPERATOR, MANAGER, ADMIN, AGENT, SERVICE)


@dataclass(frozen=True, slots=True)
class Client:
    id: str
    role: str
    session_id: str | None = None  # set when a token identified the client

    @property
    def is_agent(self) -> bool:
        return self.role in (AGENT, SERVICE)
