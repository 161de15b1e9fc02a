"""Slowing down password guessing without letting a guesser lock the owner out.

Two counts of failed password checks, each forgotten after a quiet ``forget_after``:

- **Per source address** (any client id): after ``source_free`` failures the address
  must wait a delay that doubles with each further failure, up to ``source_max_delay``;
  while it waits its password logins are refused at once (429 with Retry-After) without
  an argon2 check. This is what limits guesses with made-up client ids.
- **Per source address, at once**: once an address has failed, at most
  ``source_concurrent`` password checks from it are under way together; more are
  refused (429) at once, so a guesser cannot fill the hash pool's queue and keep
  everybody else waiting (addresses without failures, such as a gateway whose devices
  start together, are not limited).
- **Per client id** (from any address): after ``account_free`` failures each password
  check for that id is *delayed* (doubling, up to ``account_max_delay``), never refused.
  A guesser elsewhere slows the owner down by a few seconds at most, and the owner's
  right password still gets in; a success clears the count.

Tokens and client certificates never pass through here: they are always admitted. A
client id's count treats unknown ids exactly like known ones, so nothing says whether
an id exists. The state lives in memory (a restart forgets it) and is bounded, oldest
entries first out.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from vocabulary import clock

from .errors import TooManyAttempts


@dataclass(frozen=True)
class ThrottleConfig:
    source_free: int = 10  # failed checks from one address before it must wait
    source_base_delay: float = 1.0  # seconds, doubled for each further failure
    source_max_delay: float = 300.0
    account_free: int = 3  # failed checks for one client id before each is delayed
    account_base_delay: float = 0.25
    account_max_delay: float = 4.0  # the most a guesser can slow the owner down
    source_concurrent: int = 2  # password checks under way at once from one address
    forget_after: float = 900.0  # a count with no failure for this long starts again
    max_tracked: int = 100_000  # addresses (and client ids) remembered at once


class _Failures:
    """Failure counts per key, each with the time of its last failure."""

    def __init__(self, config: ThrottleConfig) -> None:
        self.config = config
        self._entries: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (n, last)

    def count(self, key: str, now: float) -> tuple[int, float]:
        entry = self._entries.get(key)
        if entry is None or now - entry[1] > self.config.forget_after:
            return 0, 0.0
        return entry

    def add(self, key: str, now: float) -> None:
        count = self.count(key, now)[0] + 1
        self._entries.pop(key, None)
        self._entries[key] = (count, now)
        while len(self._entries) > self.config.max_tracked:
            self._entries.popitem(last=False)

    def clear(self, key: str) -> None:
        self._entries.pop(key, None)


def _backoff(extra: int, base: float, most: float) -> float:
    return 0.0 if extra <= 0 else min(base * 2 ** (extra - 1), most)


class LoginThrottle:
    def __init__(self, config: ThrottleConfig | None = None) -> None:
        self.config = config or ThrottleConfig()
        self._sources = _Failures(self.config)
        self._accounts = _Failures(self.config)
        self._under_way: dict[str, int] = {}  # source -> password checks under way

    def check_source(self, source: str | None, now: float | None = None) -> None:
        """Raise TooManyAttempts while this address must wait."""
        if not source:
            return
        now = clock.now() if now is None else now
        count, last = self._sources.count(source, now)
        cfg = self.config
        extra = count - cfg.source_free + 1
        wait = last + _backoff(extra, cfg.source_base_delay, cfg.source_max_delay)
        if now < wait:
            raise TooManyAttempts(
                "too many failed logins from this address; try again later",
                retry_after=wait - now,
            )

    def begin(self, source: str | None, now: float | None = None) -> None:
        """A password check from ``source`` starts (TooManyAttempts when an address
        that has failed has too many under way); call ``end`` when it is over."""
        if not source:
            return
        now = clock.now() if now is None else now
        under_way = self._under_way.get(source, 0)
        failed = self._sources.count(source, now)[0] > 0
        if failed and under_way >= self.config.source_concurrent:
            raise TooManyAttempts(
                "too many logins under way from this address; try again shortly",
                retry_after=1.0,
            )
        self._under_way[source] = under_way + 1

    def end(self, source: str | None) -> None:
        if not source:
            return
        left = self._under_way.get(source, 1) - 1
        if left > 0:
            self._under_way[source] = left
        else:
            self._under_way.pop(source, None)

    def account_delay(self, client_id: str, now: float | None = None) -> float:
        """Seconds to hold a password check for this client id before making it."""
        now = clock.now() if now is None else now
        count, last = self._accounts.count(client_id, now)
        cfg = self.config
        delay = _backoff(
            count - cfg.account_free + 1, cfg.account_base_delay, cfg.account_max_delay
        )
        return max(0.0, last + delay - now) if delay else 0.0

    def failed(self, source: str | None, client_id: str, now: float | None = None) -> None:
        now = clock.now() if now is None else now
        if source:
            self._sources.add(source, now)
        self._accounts.add(client_id, now)

    def succeeded(self, client_id: str) -> None:
        """The owner proved its password: its id is no longer slowed down. The
        address's count stays (a guesser may know one password of its own)."""
        self._accounts.clear(client_id)
