"""Refusals of the core, each an RFC 9457 problem with the HTTP status it maps to.

Every binding turns a ``Problem`` into its own error form (an HTTP problem+json body, an
error response on the buses) without knowing which one it is.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

# RFC 9110's names where Python's (older) HTTPStatus phrases differ.
_RFC9110_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}


def problem_title(status: int) -> str:
    """The title of a problem with this HTTP status (RFC 9110's reason phrase)."""
    if status in _RFC9110_TITLES:
        return _RFC9110_TITLES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Problem(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extensions,
        }


class BadRequest(Problem):
    status, title = 400, "Bad Request"


class Unauthorized(Problem):
    status, title = 401, "Unauthorized"


class Forbidden(Problem):
    status, title = 403, "Forbidden"


class NotFound(Problem):
    status, title = 404, "Not Found"


class MethodNotAllowed(Problem):
    """The affordance exists but does not allow this operation (a write-only property read)."""

    status, title = 405, "Method Not Allowed"


class Conflict(Problem):
    status, title = 409, "Conflict"


class ServiceUnavailable(Problem):
    status, title = 503, "Service Unavailable"
