"""Times in the certs package: timezone-aware UTC ``datetime`` objects throughout.

Every ``now`` parameter takes one (or None for the current time); every time the package
returns is one; JSON gets the hub's RFC 3339 form (``2026-11-23T10:15:30.000Z``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from .errors import CertificateError


def utc(now: datetime | None = None) -> datetime:
    """``now`` in UTC, or the current time; a naive datetime is refused (its zone is a guess)."""
    if now is None:
        return datetime.now(UTC)
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise CertificateError(f"now must be a timezone-aware datetime, not {now!r}")
    return now.astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    """The hub's fixed-width form, the same as ``digitwin.clock.rfc3339``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def whole_days(value: object, what: str, minimum: int = 1) -> int:
    """A count of days given by a caller (often straight from JSON), checked."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CertificateError(f"{what} must be a whole number >= {minimum}, not {value!r}")
    return value
