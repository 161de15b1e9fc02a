"""An authenticated client, as bindings hand it to the router."""

from __future__ import annotations

from dataclasses import dataclass

from .roles import AGENT, SERVICE


@dataclass(frozen=True, slots=True)
class Client:
    id: str
    role: str
    session_id: str | None = None  # set when a token identified the client

    @property
    def is_agent(self) -> bool:
        return self.role in (AGENT, SERVICE)
