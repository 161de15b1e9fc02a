"""The errors every client raises (HTTP, WebSocket, MQTT, NATS): the same class for the
same situation, whatever the binding.

::

    ClientError                      anything that went wrong talking to the hub
    ├── HubError                     the hub refused: .status and its RFC 9457 .problem
    │   ├── BadRequest               400: the input is not valid (schema, envelope)
    │   ├── Unauthorized             401: credentials missing, wrong, expired or revoked
    │   ├── Forbidden                403: the client's role does not allow it
    │   ├── NotFound                 404: no such Thing, affordance or action
    │   └── Conflict                 409: another client owns it; the request already ended
    ├── HubUnreachable               cannot connect: refused, no route, TLS not verified
    ├── Disconnected                 the connection was lost or closed
    ├── HubTimeout                   no answer in time
    └── NotSupported                 the binding has no way to do it (the directory, no HTTPS known)

``HubUnreachable`` and ``Disconnected`` are also ``ConnectionError``s and ``HubTimeout`` a
``TimeoutError``, so code that catches the built-in ones keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any


class ClientError(Exception):
    """Anything a client raises about the hub."""


class HubError(ClientError):
    """The hub answered with an error: ``status`` (the HTTP status code, also on the
    buses), its problem details (RFC 9457) in ``problem``, and on the buses the whole
    response envelope in ``response``."""

    def __init__(
        self,
        status: int,
        problem: Mapping[str, Any] | None = None,
        response: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.problem: dict[str, Any] = dict(problem or {})
        self.response: dict[str, Any] = dict(response or {})
        self.title: str = str(self.problem.get("title") or reason(status))
        detail = self.problem.get("detail")
        self.detail: str | None = str(detail) if detail is not None else None
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.status} {self.title}"
        return f"{text}: {self.detail}" if self.detail else text


class BadRequest(HubError):
    """400: the input is not valid (a schema refused it, a field is missing)."""


class Unauthorized(HubError):
    """401: the hub does not know who this is (no, wrong, expired or revoked credentials)."""


class Forbidden(HubError):
    """403: the client's role does not allow the operation."""


class NotFound(HubError):
    """404: no such Thing, affordance or action."""


class Conflict(HubError):
    """409: another client owns that Thing, or the request already ended."""


_BY_STATUS: dict[int, type[HubError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}


def hub_error(
    problem: Mapping[str, Any] | None,
    *,
    status: int | None = None,
    response: Mapping[str, Any] | None = None,
) -> HubError:
    """The error for a refusal: the class that ``status`` (else the problem's own
    ``status``, else 500) names."""
    problem = dict(problem or {})
    if status is None:
        given = problem.get("status")
        status = given if isinstance(given, int) else 500
    return _BY_STATUS.get(status, HubError)(status, problem, response)


def refused(status: int, detail: str) -> HubError:
    """A refusal the client tells without a problem from the hub (a bus's reason code)."""
    return hub_error({"title": reason(status), "status": status, "detail": detail})


class HubUnreachable(ClientError, ConnectionError):
    """No connection to the hub at ``url``: refused, timed out, or its TLS certificate
    could not be verified (``tls``)."""

    def __init__(self, url: str, reason: str, *, tls: bool = False) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.tls = tls


class Disconnected(ClientError, ConnectionError):
    """There is no connection: it was lost (while a request waited, say) or closed."""


class HubTimeout(ClientError, TimeoutError):
    """The hub did not answer in time (the request may still have been carried out)."""


class NotSupported(ClientError):
    """The binding has no way to do this (HTTP carries no requests to agents, the buses
    no directory listing)."""


def reason(status: int) -> str:
    """The HTTP reason phrase of ``status`` ("Error" when it has none)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
