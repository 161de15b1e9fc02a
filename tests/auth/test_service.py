"""Logins, tokens, sessions and the life of a client, with the real store and keys."""

import os
import stat

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth.errors import AuthenticationFailed, TooManyAttempts
from auth.tokens import TokenSigner
from bucketstore import open_store
from digitwin.errors import BadRequest, Conflict

from .conftest import make_auth


def test_login_gives_a_token_that_authenticates(auth):
    login = auth.login("alice", "alice-password")
    client = auth.authenticate_token(login["token"])
    assert (client.id, client.role) == ("alice", "operator")
    assert client.session_id is not None
    assert login["clientID"] == "alice" and login["expires"].endswith("Z")


@pytest.mark.parametrize(
    "client_id, password",
    [("alice", "wrong-password"), ("nobody", "alice-password"), ("", "x"), (None, None), (5, [])],
)
def test_failed_logins_all_look_the_same(auth, client_id, password):
    with pytest.raises(AuthenticationFailed) as refused:
        auth.login(client_id, password)
    assert refused.value.status == 401
    assert refused.value.detail == "invalid credentials"  # never "no such client"


def test_disabled_client_cannot_log_in_and_its_tokens_stop_working(auth):
    token = auth.login("alice", "alice-password")["token"]
    auth.update_client("alice", enabled=False)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(token)
    with pytest.raises(AuthenticationFailed):
        auth.login("alice", "alice-password")
    auth.update_client("alice", enabled=True)
    with pytest.raises(AuthenticationFailed):  # disabling ended the session for good
        auth.authenticate_token(token)


def test_removed_client_tokens_are_refused(auth):
    token = auth.login("alice", "alice-password")["token"]
    auth.remove_client("alice")
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(token)


def test_expired_token_is_refused_but_can_be_refreshed_within_its_session(auth):
    session_id = auth.authenticate_token(auth.login("alice", "alice-password")["token"]).session_id
    expired = auth.signer.issue("alice", "operator", session_id, lifetime=-10)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(expired)
    fresh = auth.refresh(expired)["token"]
    assert auth.authenticate_token(fresh).id == "alice"


def test_tampered_token_is_refused(auth):
    token = auth.login("alice", "alice-password")["token"]
    header, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged_payload = jwt.encode({**claims, "role": "admin"}, "k" * 32).split(".")[1]
    for forged in (f"{header}.{forged_payload}.{signature}", token[:-2] + "xx", "not.a.token"):
        with pytest.raises(AuthenticationFailed):
            auth.authenticate_token(forged)


def test_token_signed_by_another_key_is_refused(auth):
    login = auth.login("alice", "alice-password")
    claims = jwt.decode(login["token"], options={"verify_signature": False})
    other = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(other)
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(unsigned)


def test_logout_revokes_the_session_and_refresh(auth):
    token = auth.login("alice", "alice-password")["token"]
    auth.logout(token)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(token)
    with pytest.raises(AuthenticationFailed):
        auth.refresh(token)


def test_password_change_ends_sessions(auth):
    token = auth.login("alice", "alice-password")["token"]
    auth.update_client("alice", password="new-password-1")
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(token)
    assert auth.authenticate_password("alice", "new-password-1").id == "alice"


def test_role_change_shows_on_the_next_authentication(auth):
    token = auth.login("alice", "alice-password")["token"]
    auth.update_client("alice", role="manager")
    assert auth.authenticate_token(token).role == "manager"


def test_repeated_failures_slow_the_client_id_down_known_or_not(auth):
    for client_id in ("alice", "nobody"):
        for _ in range(4):  # three free failures, then each one costs a wait
            with pytest.raises(AuthenticationFailed):
                auth.login(client_id, "wrong")
        with pytest.raises(TooManyAttempts) as slowed:
            auth.login(client_id, "alice-password")  # refused without checking the password
        assert slowed.value.status == 429 and slowed.value.retry_after > 0
    assert auth.login("lamp-agent", "agent-password")["clientID"] == "lamp-agent"


def test_client_ids_roles_and_passwords_are_checked(auth):
    with pytest.raises(Conflict):
        auth.add_client("alice", "consumer", "viewer")
    for bad in [
        ("has space", "consumer", "viewer"),
        ("wothub", "consumer", "viewer"),
        ("x", "consumer", "agent"),
        ("y", "agent", "admin"),
        ("z", "robot", "viewer"),
    ]:
        with pytest.raises(BadRequest):
            auth.add_client(*bad)
    with pytest.raises(BadRequest, match="8 characters"):
        auth.add_client("short", "consumer", "viewer", password="short")


def test_signing_key_and_admin_password_files_are_private(tmp_path, store):
    auth = make_auth(tmp_path / "home", store)
    path = auth.ensure_admin()
    assert path is not None and auth.ensure_admin() is None  # only on first run
    for file in (tmp_path / "home" / "admin.password", tmp_path / "home/keys/token-signing.key"):
        assert stat.S_IMODE(os.stat(file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "home" / "keys").st_mode) == 0o700
    password = (tmp_path / "home" / "admin.password").read_text().strip()
    assert auth.authenticate_password("admin", password).role == "admin"


def test_restart_keeps_clients_sessions_and_revocations(tmp_path):
    home = tmp_path / "home"
    with open_store(tmp_path / "store") as store:
        auth = make_auth(home, store)
        auth.add_client("carol", "consumer", "viewer", password="carol-password")
        kept = auth.login("carol", "carol-password")["token"]
        ended = auth.login("carol", "carol-password")["token"]
        auth.logout(ended)
    with open_store(tmp_path / "store") as store:
        auth = make_auth(home, store)
        assert auth.authenticate_token(kept).id == "carol"
        with pytest.raises(AuthenticationFailed):
            auth.authenticate_token(ended)
        assert auth.authenticate_password("carol", "carol-password").id == "carol"
        assert TokenSigner.load_or_create(home).verify(kept).client_id == "carol"
