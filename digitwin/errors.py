"""Refusals of the core, each an RFC 9457 problem with the HTTP status it maps to.

Every binding turns a ``Problem`` into its own error form (an HTTP problem+json body, an
error response on the buses) without knowing which one it is.
"""

from __future__ import annotations

from typing import Any


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


class Conflict(Problem):
    status, title = 409, "Conflict"


class ServiceUnavailable(Problem):
    status, title = 503, "Service Unavailable"
