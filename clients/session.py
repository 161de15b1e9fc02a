"""One client's login, shared by every connection it opens (docs/client.md, "Logins and
tokens"): its credentials, the current token and when that token expires.

- ``login`` turns the password into a token (HTTPS ``POST /authn/login``, the hub's one
  password login that gives a token);
- ``keep_fresh`` refreshes the token before it expires: over the client's own binding
  while it is connected (the ``refresh`` action of ``urn:wothub:authn``), else over HTTPS;
- ``renew`` after the hub refused what a connection sent: a new token by refresh, else by
  logging in again with the password. When nothing works the session has ended:
  ``ended`` is the ``Unauthorized`` every connection raises from then on; they close
  (``when_ended``) instead of trying again;
- ``secret`` is what a bus sends at its next (re)connect, ``pause`` the wait before it.

Each transport registers how it can refresh (``add_refresher``) and log in
(``login_with``); the session decides which credential and when.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from .backoff import Backoff
from .errors import ClientError, Disconnected, HubError, HubTimeout, HubUnreachable, Unauthorized
from .errors import refused as refusal

log = logging.getLogger("wothub.client.session")

# A refresher: the token -> the hub's answer ({"token", "expires", ...}). It raises
# ``Unauthorized`` when the hub refuses, a connection error when it cannot ask now.
Refresher = Callable[[str], Awaitable[Mapping[str, Any]]]
# A login: (client id, password) -> the hub's answer.
Login = Callable[[str, str], Awaitable[Mapping[str, Any]]]
# Refresh this long before the token expires, at most; a third of its lifetime when that
# is shorter (a short-lived token is refreshed after two thirds of its life).
REFRESH_AHEAD = 60.0
_NOT_NOW = (Disconnected, HubUnreachable, HubTimeout)


class Session:
    """The credentials of one client (``password`` or ``token``; with neither, a client
    certificate) and the token it holds now."""

    def __init__(
        self,
        client_id: str | None = None,
        *,
        password: str | None = None,
        token: str | None = None,
    ) -> None:
        self.client_id = client_id
        self.password = password
        self.token: str | None = None
        self.issued: float | None = None  # the token's iat and exp (seconds since 1970)
        self.expires: float | None = None
        self.ended: Unauthorized | None = None
        self.refreshes = 0  # tokens got by refresh
        self._refreshers: list[tuple[Refresher, bool]] = []  # (how, needs the connection)
        self._login: Login | None = None
        self._renewing = asyncio.Lock()
        self._changed = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        self._on_end: list[Callable[[], Any]] = []
        if token is not None:
            self.use_token(token)

    # -- the token ------------------------------------------------------------------------

    def use_token(self, token: str | None) -> None:
        """Hold ``token`` from now on (None: none)."""
        self.token = token
        self.issued, self.expires = _lifetime(token)
        self._changed.set()

    def use(self, answer: Any) -> Mapping[str, Any]:
        """Take the token of a login's or a refresh's answer."""
        if not isinstance(answer, Mapping) or not isinstance(answer.get("token"), str):
            raise HubError(502, {"title": "Bad Gateway", "detail": "no token in the answer"})
        if isinstance(answer.get("clientID"), str):
            self.client_id = answer["clientID"]
        self.use_token(answer["token"])
        return answer

    def secret(self) -> str | None:
        """What a bus sends (as its password) at its next (re)connect: the password when
        there is one (the hub remembers one it checked a moment ago), else the current
        token. ``Unauthorized`` once the session has ended."""
        self.check()
        return self.password if self.password is not None else self.token

    def check(self) -> None:
        """Raise ``ended`` once the session has ended."""
        if self.ended is not None:
            raise self.ended

    def forget(self) -> None:
        """After a logout: no token, no password."""
        self.password = None
        self.use_token(None)

    # -- how to reach the hub's authn -----------------------------------------------------

    def add_refresher(self, refresher: Refresher, *, needs_connection: bool) -> None:
        """One more way to refresh, tried after those added before. ``needs_connection``:
        it goes over a connection that the hub may refuse (a bus), not HTTPS."""
        self._refreshers.append((refresher, needs_connection))

    def remove_refresher(self, refresher: Refresher) -> None:
        self._refreshers = [way for way in self._refreshers if way[0] != refresher]

    def login_with(self, login: Login) -> None:
        self._login = login

    def when_ended(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` when the session ends (a connection then closes: the hub
        would refuse all it sends)."""
        self._on_end.append(callback)

    # -- logging in, refreshing -----------------------------------------------------------

    async def login(self) -> Mapping[str, Any]:
        """A token for the password."""
        self.check()
        if self._login is None or self.client_id is None or self.password is None:
            raise RuntimeError("a login needs a client id, a password and an HTTPS address")
        return self.use(await self._login(self.client_id, self.password))

    async def refresh(self) -> Mapping[str, Any]:
        """A new token for this session (the current one may have expired), by the first
        way that reaches the hub. ``Unauthorized`` when the hub refuses."""
        self.check()
        token = self.token
        if token is None:
            raise RuntimeError("no token to refresh; log in first")
        unreachable: ClientError = Disconnected("no connection to refresh the token over")
        for refresher, _ in list(self._refreshers):
            try:
                answer = await refresher(token)
            except _NOT_NOW as exc:
                unreachable = exc
                continue
            self.refreshes += 1
            return self.use(answer)
        raise unreachable

    async def renew(self, stale: str | None, *, refused: bool = True) -> bool:
        """After the hub ``refused`` ``stale`` (the token or password a connection sent),
        or when the token is due (``refused=False``): a new token by refresh, else by a
        new login with the password. True when there is something new to try; False
        when there was nothing to send (no credentials). When the hub refuses both, or
        it refused the connection and nothing else can reach it, the session ends:
        ``Unauthorized`` (also ``ended``). Other errors (the hub is unreachable) are
        raised as they are: try again later."""
        self.check()
        async with self._renewing:
            self.check()
            if stale is None and self.token is None and self.password is None:
                return False
            if stale is not None and stale not in (self.token, self.password):
                return True  # renewed meanwhile
            if stale is not None and stale == self.password and stale != self.token:
                self._end("the hub refused the password")
            if self.token is not None:
                try:
                    await self.refresh()
                    return True
                except Unauthorized as exc:
                    log.debug("refresh refused (%s)", exc)
                except _NOT_NOW:
                    if not refused or any(not needs for _, needs in self._refreshers):
                        raise  # the connection, or HTTPS, may answer later
                    if self._login is None:
                        self._end("the token was refused and there is no way to refresh it")
            if self.password is not None and self._login is not None:
                try:
                    await self.login()
                    return True
                except Unauthorized as exc:
                    self._end(f"a new login was refused: {exc.detail or exc}")
            self._end("the hub refused to refresh the token: log in again")
        raise AssertionError("unreachable")

    def _end(self, why: str) -> None:
        self.ended = refusal(401, f"the session of {self.client_id or 'this client'} ended: {why}")
        log.warning("%s", self.ended)
        self._changed.set()
        for callback in self._on_end:
            try:
                callback()
            except Exception:  # one connection's trouble must not stop the others
                log.exception("closing a connection of an ended session failed")
        raise self.ended

    # -- refreshing ahead of time ---------------------------------------------------------

    def refresh_at(self) -> float | None:
        """When to refresh the token (seconds since 1970), None without one."""
        if self.issued is None or self.expires is None:
            return None
        return self.expires - min(REFRESH_AHEAD, (self.expires - self.issued) / 3)

    def keep_fresh(self) -> None:
        """Refresh the token before it expires, from now until ``close`` (or the end)."""
        if self._keeper is None:
            self._keeper = asyncio.create_task(self._keep_fresh(), name="token refresh")

    async def _keep_fresh(self) -> None:
        backoff = Backoff(1.0, 30.0)
        while self.ended is None:
            self._changed.clear()
            due = self.refresh_at()
            if due is None or due > time.time():
                # until the refresh time, or sooner when the token changes
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(None if due is None else due - time.time()):
                        await self._changed.wait()
                continue
            try:
                await self.renew(self.token, refused=False)
                backoff.reset()
            except Unauthorized:
                return  # ended: the connections raise it
            except ClientError as exc:  # the hub is away: again, before the token's grace ends
                log.info("refreshing the token of %s failed: %s", self.client_id, exc)
                await backoff.pause()

    async def close(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    # -- reconnecting ---------------------------------------------------------------------

    async def pause(self, backoff: Backoff) -> str | None:
        """Before a reconnect: wait ``backoff``'s pause, then the credential to send
        (``secret``); ``Unauthorized`` once the session has ended."""
        self.check()
        await backoff.pause()
        return self.secret()


def _lifetime(token: str | None) -> tuple[float | None, float | None]:
    """(iat, exp) of a hub token (a JWT, read without checking its signature: only the
    hub checks it); (None, None) for anything else."""
    if token is None or token.count(".") != 2:
        return None, None
    payload = token.split(".")[1]
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        issued, expires = float(claims["iat"]), float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return None, None
    return issued, expires


__all__ = ["Session"]
