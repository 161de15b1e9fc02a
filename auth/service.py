"""Authentication: logins, tokens and sessions, and checking credentials of any kind.

Every binding uses this one object, so the same credentials work everywhere: a password
(argon2id), a bearer token (Ed25519-signed, expiring, refreshable while its session
lasts, revocable by logout), or a client certificate the hub's CA issued (checked by the
``certs`` package; this object then checks that the client still exists and is enabled).
A binding hands over what the client presented (``Credentials``) to ``authenticate``,
which applies the one precedence of ``auth.credentials``.
Every failure is the same ``AuthenticationFailed``, whatever the reason, so nothing says
whether a client id exists; the reason is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from bucketstore import BucketStore
from vocabulary import clock
from vocabulary.identity import Client
from vocabulary.problems import Conflict

from .accounts import Account, Accounts
from .credentials import CERTIFICATE, PASSWORD, TOKEN, Credentials
from .errors import AuthenticationFailed
from .hash_pool import HashPool
from .passwords import HashCost, Passwords, random_password
from .roles import ADMIN
from .sessions import Sessions
from .throttle import LoginThrottle, ThrottleConfig
from .tokens import TokenError, TokenSigner, write_private
from .verified import RecentVerifications

log = logging.getLogger("wothub.auth")

_REFUSED = "invalid credentials"
_ADMITTED_MAX = 10_000  # tokens remembered as admitted at once


@dataclass(frozen=True)
class AuthConfig:
    # Seconds a token is good for, and a session (within which tokens are refreshed),
    # per kind of client: people log in again, devices should not have to.
    token_lifetime: dict[str, float] = field(
        default_factory=lambda: {"consumer": 3600.0, "agent": 86400.0, "service": 86400.0}
    )
    session_lifetime: dict[str, float] = field(
        default_factory=lambda: {
            "consumer": 7 * 86400.0,
            "agent": 365 * 86400.0,
            "service": 365 * 86400.0,
        }
    )
    # How long after its expiry a token may still be refreshed: a session whose last
    # token is older than that has been idle too long and ends (log in again).
    refresh_grace: dict[str, float] = field(
        default_factory=lambda: {"consumer": 3600.0, "agent": 86400.0, "service": 86400.0}
    )
    throttle: ThrottleConfig = field(default_factory=ThrottleConfig)
    hash_cost: HashCost = field(default_factory=HashCost)
    hash_workers: int = 0  # password checks at once (0: one per core but one)
    hash_queue: int = 8  # checks waiting for a worker before more are refused (503)
    verified_ttl: float = 900.0  # seconds a successful password check is remembered


class AuthService:
    def __init__(self, store: BucketStore, home: Path, config: AuthConfig | None = None) -> None:
        self.config = config or AuthConfig()
        self.home = Path(home)
        clients, sessions = store.bucket("clients"), store.bucket("sessions")
        self._buckets = clients, sessions  # see follow_other_nodes
        self.accounts = Accounts(clients, Passwords(self.config.hash_cost))
        self.sessions = Sessions(sessions)
        self.signer = TokenSigner.load_or_create(self.home)
        self.throttle = LoginThrottle(self.config.throttle)
        self.hash_pool = HashPool(self.config.hash_workers or None, self.config.hash_queue)
        self.verified = RecentVerifications(self.config.verified_ttl)
        # Tokens checked in full, with their client, until the token or its session
        # expires; all forgotten by any change that can refuse a token (logout, a client
        # removed, disabled or changed): every request after it is checked in full.
        self._admitted: dict[str, tuple[Client, float]] = {}
        # Told of every refused credential, whatever the binding (the hub counts them).
        self.on_refused: Callable[[], None] | None = None
        # Told when a client is removed, disabled, or its role or password changes (the
        # hub then closes its connections: what they subscribed to was checked before).
        self.on_client_changed: Callable[[str, str], None] | None = None
        # Told when a session ends by logout, with its client and session ids (the hub
        # then closes the connections that logged in with a token of it).
        self.on_session_ended: Callable[[str, str], None] | None = None

    # -- logging in and out ---------------------------------------------------------------

    async def login(
        self, client_id: Any, password: Any, source: str | None = None
    ) -> dict[str, Any]:
        """Check a password and open a session: {"token", "expires", "clientID", "role"}.
        ``source`` is the client's network address (for the throttle)."""
        account = await self._check_password(client_id, password, "login", source)
        return self._open_session(account)

    def new_token(self, client_id: str) -> dict[str, Any]:
        """A token for a client without its password (an administrator's action)."""
        account = self.accounts.require(client_id)
        if not account.enabled:  # the admin's request is fine; the client is not
            raise Conflict(f"client {client_id!r} is disabled; enable it first")
        return self._open_session(account)

    def refresh(self, token: Any) -> dict[str, Any]:
        """A new token for the same session, while the session and the client are valid
        (the old token may have expired up to ``refresh_grace`` ago; its signature must
        still be the hub's)."""
        claims = self._claims(token, allow_expired=True)
        account = self._valid_account(claims.client_id)
        grace = self.config.refresh_grace.get(account.kind, 3600.0)
        if claims.expires + grace <= clock.now():
            self._refuse("refresh", claims.client_id, "the token expired too long ago")
        session = self.sessions.get(claims.session_id)
        if session is None or not session.valid() or session.client_id != account.client_id:
            self._refuse("refresh", claims.client_id, "the session has ended")
        return self._token(account, session.session_id, session.expires)

    def logout(self, token: Any) -> None:
        claims = self._claims(token, allow_expired=True)
        self.end_session(claims.session_id)

    def end_session(self, session_id: str) -> None:
        """Logout: the session's tokens are refused from now on, and connections that
        logged in with one are told (``on_session_ended``)."""
        session = self.sessions.get(session_id)
        self.sessions.revoke(session_id)
        self._admitted.clear()
        if session is not None and self.on_session_ended is not None:
            self.on_session_ended(session.client_id, session_id)

    # -- checking credentials -------------------------------------------------------------

    async def authenticate(
        self,
        credentials: Credentials,
        source: str | None = None,
        verify_certificate: Callable[[Any], str] | None = None,
    ) -> Client:
        """The client these credentials prove, by the one precedence (auth.credentials):
        a token, else a password, else the certificate, the first present deciding alone;
        a client id named beside a token or certificate must be its client. ``source``
        is the client's network address (for the throttle); ``verify_certificate`` the
        CA's check (see ``authenticate_certificate``)."""
        method = credentials.method
        if method == TOKEN:
            client = self.authenticate_token(credentials.bearer)
        elif method == PASSWORD:
            if not credentials.client_id:
                self._refuse("password", "?", "a password without a client id")
            return await self.authenticate_password(
                credentials.client_id, credentials.password, source
            )
        elif method == CERTIFICATE:
            if verify_certificate is None:  # without the CA's check, never admitted
                self._refuse("certificate", "?", "client certificates are not checked here")
            client = self.authenticate_certificate(credentials.certificate, verify_certificate)
        else:  # nothing to refuse: the binding says what to send
            raise AuthenticationFailed(
                "no credentials: a token, a password with its client id, or a client certificate"
            )
        if credentials.client_id and credentials.client_id != client.id:
            self._refuse(method, credentials.client_id, f"the {method} belongs to {client.id!r}")
        return client

    def authenticate_token(self, token: Any) -> Client:
        """The token's client, while the token, its session and its client are valid.
        A token admitted before is recognised at once until it or its session expires
        or anything changes that could refuse it (see ``_admitted``)."""
        if isinstance(token, str) and (known := self._admitted.get(token)) is not None:
            client, until = known
            if clock.now() < until:
                return client
        claims = self._claims(token)
        account = self._valid_account(claims.client_id)
        session = self.sessions.get(claims.session_id)
        if session is None or not session.valid() or session.client_id != account.client_id:
            self._refuse("token", claims.client_id, "the session has ended")
        client = Client(account.client_id, account.role, claims.session_id)
        if len(self._admitted) >= _ADMITTED_MAX:
            self._admitted.clear()  # simpler than LRU; refilled by the next requests
        self._admitted[token] = (client, min(claims.expires, session.expires))
        return client

    async def authenticate_password(
        self, client_id: Any, password: Any, source: str | None = None
    ) -> Client:
        """For HTTP Basic and bindings whose clients send a password on every connect
        (MQTT, NATS); ``source`` is the client's network address (for the throttle)."""
        account = await self._check_password(client_id, password, "password", source)
        return Client(account.client_id, account.role)

    def authenticate_certificate(self, certificate: Any, verify: Callable[[Any], str]) -> Client:
        """``verify`` is the CA's check (it returns the client id or raises); the client
        must then still exist and be enabled."""
        try:
            client_id = verify(certificate)
        except Exception as exc:  # the CA says why; the client hears only "refused"
            reason: str | None = str(exc)
        else:
            reason = None
        if reason is not None:  # raised outside the except, so the cause is not chained
            self._refuse("certificate", "?", reason)
        account = self._valid_account(client_id)
        return Client(account.client_id, account.role)

    # -- administration -------------------------------------------------------------------

    def add_client(
        self,
        client_id: str,
        kind: str,
        role: str,
        *,
        display_name: str = "",
        password: str | None = None,
    ) -> Account:
        return self.accounts.add(
            client_id, kind, role, display_name=display_name, password=password
        )

    def remove_client(self, client_id: str) -> Account:
        account = self.accounts.remove(client_id)
        self.sessions.revoke_all(client_id)
        self._admitted.clear()
        self.verified.forget(client_id)
        self._changed(client_id, "client removed")
        return account

    def update_client(self, client_id: str, **changes: Any) -> Account:
        """Change role, enabled, password or display name. Disabling a client or changing
        its password ends its sessions; every change applies to its very next request."""
        account = self.accounts.update(client_id, **changes)
        if changes.get("enabled") is False or changes.get("password") is not None:
            self.sessions.revoke_all(client_id)
        self._admitted.clear()  # the role a token's client has, or whether it may log in
        self.verified.forget(client_id)  # checked afresh with the new role or password
        if any(changes.get(key) is not None for key in ("role", "password")) or (
            changes.get("enabled") is False
        ):
            self._changed(client_id, "client changed: role, password or enabled")
        return account

    # -- changes made by other nodes (a shared store, cluster mode) -----------------------

    def follow_other_nodes(self, loop: asyncio.AbstractEventLoop) -> None:
        """Apply here what another node changes in the shared store as if it were done
        here: its copies dropped, remembered tokens and passwords forgotten, and the
        hub told of a client changed or a session ended (it closes their connections),
        on ``loop``. On a store that only this hub writes (LevelDB), nothing is ever
        reported."""
        clients, sessions = self._buckets
        clients.on_change(self._client_changed, loop)
        sessions.on_change(self._session_changed, loop)

    def _client_changed(self, client_id: str) -> None:
        before = self.accounts.forget(client_id)
        after = self.accounts.get(client_id)
        self._admitted.clear()
        self.verified.forget(client_id)
        if after is None:
            self._changed(client_id, "client removed on another node")
        elif before is None or (
            (before.role, before.password_hash, before.enabled)
            != (after.role, after.password_hash, after.enabled)
        ):  # as update_client: what a connection was admitted with no longer holds
            self._changed(client_id, "client changed on another node")

    def _session_changed(self, key: str) -> None:
        kind, _, session_id = key.partition("\x00")
        if kind != "s":
            return  # the index of a client's sessions
        before = self.sessions.forget(session_id)
        after = self.sessions.get(session_id)
        if after is not None and after.valid():
            return  # a session opened (or refreshed) on another node
        self._admitted.clear()
        ended = after or before
        if ended is not None and self.on_session_ended is not None:
            self.on_session_ended(ended.client_id, session_id)

    def _changed(self, client_id: str, reason: str) -> None:
        if self.on_client_changed is not None:
            self.on_client_changed(client_id, reason)

    def ensure_admin(self) -> str | None:
        """On first run, create the ``admin`` client with a random password written once
        to ``<home>/admin.password`` (mode 0600); returns that path, or None."""
        if any(account.role == ADMIN for account in self.accounts.list()):
            return None
        password = random_password()
        try:
            self.accounts.add(
                "admin", "consumer", ADMIN, display_name="Administrator", password=password
            )
        except Conflict:  # another node of a cluster, starting at the same time, did
            return None
        path = self.home / "admin.password"
        path.unlink(missing_ok=True)
        write_private(path, (password + "\n").encode())
        return str(path)

    # -- internals ----------------------------------------------------------------------

    async def _check_password(
        self, client_id: Any, password: Any, what: str, source: str | None
    ) -> Account:
        """The enabled account with this password. Never blocks the event loop: a
        password proven right recently is recognised at once; any other is checked on
        the hash pool, if its address may try now, after the throttle's delay for a
        client id being guessed at (see throttle)."""
        key = client_id if isinstance(client_id, str) else repr(client_id)
        account = self.accounts.get(client_id) if isinstance(client_id, str) else None
        if (
            account is not None
            and account.enabled
            and isinstance(password, str)
            and self.verified.matches(key, password, account.password_hash)
        ):
            self.throttle.succeeded(key)
            return account  # a password just proven right: admitted from any address
        self.throttle.check_source(source)
        self.throttle.begin(source)
        try:
            delay = self.throttle.account_delay(key)
            if delay > 0:
                await asyncio.sleep(delay)  # slowed, never refused: the owner still gets in
            stored = account.password_hash if account is not None else None
            matched = await self.hash_pool.run(
                lambda: self.accounts.passwords.verify(stored, password)
            )
        finally:
            self.throttle.end(source)
        account = self.accounts.get(key) if matched else None  # current after the wait
        if (
            account is None
            or not account.enabled
            or stored is None  # no hash: never matched (verify spent the time on a decoy)
            or account.password_hash != stored
        ):
            self.throttle.failed(source, key)
            self._refuse(what, key, "wrong client id or password, or a disabled client")
        self.throttle.succeeded(key)
        self.verified.remember(key, password, stored)
        return account

    def _open_session(self, account: Account) -> dict[str, Any]:
        lifetime = self.config.session_lifetime.get(account.kind, 86400.0)
        session = self.sessions.create(account.client_id, lifetime)
        return self._token(account, session.session_id, session.expires)

    def _token(self, account: Account, session_id: str, session_expires: float) -> dict[str, Any]:
        lifetime = self.config.token_lifetime.get(account.kind, 3600.0)
        lifetime = max(1.0, min(lifetime, session_expires - clock.now()))
        token = self.signer.issue(account.client_id, account.role, session_id, lifetime)
        return {
            "token": token,
            "expires": clock.rfc3339(clock.now() + lifetime),
            "clientID": account.client_id,
            "role": account.role,
        }

    def _claims(self, token: Any, *, allow_expired: bool = False):
        try:
            return self.signer.verify(token, allow_expired=allow_expired)
        except TokenError as exc:
            reason = str(exc)
        self._refuse("token", "?", reason)  # outside the except: the cause is not chained

    def _valid_account(self, client_id: str) -> Account:
        account = self.accounts.get(client_id)
        if account is None or not account.enabled:
            self._refuse("credentials", client_id, "unknown or disabled client")
        return account

    def _refuse(self, what: str, client_id: str, reason: str) -> NoReturn:
        log.warning("%s refused for %r: %s", what, client_id, reason)
        if self.on_refused is not None:
            self.on_refused()
        raise AuthenticationFailed(_REFUSED)
