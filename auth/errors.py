"""Authentication refusals. They map to HTTP 401 (or 429 while a client id is being
slowed down, 503 while too many password checks are under way) on every binding, and
never say whether a client id exists."""

from __future__ import annotations

from vocabulary.problems import Problem, Unauthorized


class AuthenticationFailed(Unauthorized):
    """Bad credentials, an unknown or disabled client, an invalid or revoked token."""


class TooManyAttempts(Problem):
    status, title = 429, "Too Many Requests"

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail, retryAfter=round(retry_after, 1))
        self.retry_after = retry_after


class Busy(Problem):
    """Too much work under way to take this one now (password checks)."""

    status, title = 503, "Service Unavailable"

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail, retryAfter=round(retry_after, 1))
        self.retry_after = retry_after
