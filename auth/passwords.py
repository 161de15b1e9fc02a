"""Password hashing with argon2id (argon2-cffi), and the random passwords the hub makes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .credentials import looks_like_token


@dataclass(frozen=True)
class HashCost:
    """argon2id cost. The defaults are RFC 9106's second recommended option (64 MiB)."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 4


class Passwords:
    def __init__(self, cost: HashCost | None = None) -> None:
        cost = cost or HashCost()
        self._hasher = PasswordHasher(
            time_cost=cost.time_cost, memory_cost=cost.memory_kib, parallelism=cost.parallelism
        )
        # Checked against when a client id is unknown, so that costs the same time.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        if not isinstance(password, str) or len(password) < 8:
            raise ValueError("a password needs at least 8 characters")
        if looks_like_token(password):  # it would be checked as a token, never as this
            raise ValueError("a password may not look like a token (eyJ..., two dots)")
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; with no stored hash it spends the same time."""
        if not isinstance(password, str):
            return False
        try:
            return self._hasher.verify(stored_hash or self._decoy, password) and bool(stored_hash)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def random_password() -> str:
    """24 URL-safe characters: 144 bits."""
    return secrets.token_urlsafe(18)
