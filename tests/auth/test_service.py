"""Logins, tokens, sessions and the life of a client, with the real store and keys."""

import os
import stat

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth.errors import AuthenticationFailed, TooManyAttempts
from auth.tokens import TokenSigner
from bucketstore import open_store
from vocabulary.problems import BadRequest, Conflict

from .conftest import make_auth


async def test_login_gives_a_token_that_authenticates(auth):
    login = await auth.login("alice", "alice-password")
    client = auth.authenticate_token(login["token"])
    assert (client.id, client.role) == ("alice", "operator")
    assert client.session_id is not None
    assert login["clientID"] == "alice" and login["expires"].endswith("Z")


@pytest.mark.parametrize(
    "client_id, password",
    [("alice", "wrong-password"), ("nobody", "alice-password"), ("", "x"), (None, None), (5, [])],
)
async def test_failed_logins_all_look_the_same(auth, client_id, password):
    with pytest.raises(AuthenticationFailed) as refused:
        await auth.login(client_id, password)
    assert refused.value.status == 401
    assert refused.value.detail == "invalid credentials"  # never "no such client"


async def test_disabled_client_cannot_log_in_and_its_tokens_stop_working(auth):
    token = (await auth.login("alice", "alice-password"))["token"]
    auth.update_client("alice", enabled=False)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(token)
    with pytest.raises(AuthenticationFailed):
        await auth.login("alice", "alice-password")
    auth.update_client("alice", enabled=True)
    with pytest.raises(AuthenticationFailed):  # disabling ended the session for good
        auth.authenticate_token(token)


async def test_removed_client_tokens_are_refused(auth):
    token = (await auth.login("alice", "alice-password"))["token"]
    auth.remove_client("alice")
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(token)


async def test_expired_token_is_refused_but_can_be_refreshed_within_its_session(auth):
    session_id = auth.authenticate_token(
        (await auth.login("alice", "alice-password"))["token"]
    ).session_id
    expired = auth.signer.issue("alice", "operator", session_id, lifetime=-10)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(expired)
    fresh = auth.refresh(expired)["token"]
    assert auth.authenticate_token(fresh).id == "alice"


async def test_tampered_token_is_refused(auth):
    token = (await auth.login("alice", "alice-password"))["token"]
    header, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged_payload = jwt.encode({**claims, "role": "admin"}, "k" * 32).split(".")[1]
    for forged in (f"{header}.{forged_payload}.{signature}", token[:-2] + "xx", "not.a.token"):
        with pytest.raises(AuthenticationFailed):
            auth.authenticate_token(forged)


async def test_token_signed_by_another_key_is_refused(auth):
    login = await auth.login("alice", "alice-password")
    claims = jwt.decode(login["token"], options={"verify_signature": False})
    other = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(other)
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(unsigned)


async def test_logout_revokes_the_session_and_refresh(auth):
    token = (await auth.login("alice", "alice-password"))["token"]
    auth.logout(token)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(token)
    with pytest.raises(AuthenticationFailed):
        auth.refresh(token)


async def test_logout_tells_which_session_ended(auth):
    ended = []
    auth.on_session_ended = lambda client_id, session_id: ended.append((client_id, session_id))
    token = (await auth.login("alice", "alice-password"))["token"]
    session_id = auth.authenticate_token(token).session_id
    auth.logout(token)
    assert ended == [("alice", session_id)]


async def test_password_change_ends_sessions(auth):
    token = (await auth.login("alice", "alice-password"))["token"]
    auth.update_client("alice", password="new-password-1")
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(token)
    assert (await auth.authenticate_password("alice", "new-password-1")).id == "alice"


async def test_role_change_shows_on_the_next_authentication(auth):
    token = (await auth.login("alice", "alice-password"))["token"]
    auth.update_client("alice", role="manager")
    assert auth.authenticate_token(token).role == "manager"


async def test_guesses_from_one_address_are_refused_there_and_not_elsewhere(auth):
    for number in range(6):  # made-up client ids: the address is what is counted
        with pytest.raises(AuthenticationFailed):
            await auth.login(f"guess-{number}", "wrong", source="10.0.0.9")
    checked = auth.hash_pool.checks
    with pytest.raises(TooManyAttempts) as refused:
        await auth.login("alice", "alice-password", source="10.0.0.9")
    assert refused.value.status == 429 and refused.value.retry_after > 0
    assert auth.hash_pool.checks == checked  # refused without an argon2 check
    login = await auth.login("alice", "alice-password", source="10.0.0.1")
    assert login["clientID"] == "alice"


async def test_a_guesser_cannot_keep_the_owner_out(auth):
    for _ in range(5):  # past account_free: each further check for alice is delayed
        with pytest.raises(AuthenticationFailed):
            await auth.login("alice", "wrong", source="10.0.0.9")
    assert auth.throttle.account_delay("alice") > 0
    login = await auth.login("alice", "alice-password", source="10.0.0.1")
    assert login["clientID"] == "alice"  # slowed, not refused
    assert auth.throttle.account_delay("alice") == 0  # the owner's success clears it


async def test_a_recent_password_costs_no_second_argon2_check(auth):
    await auth.authenticate_password("lamp-agent", "agent-password")
    checked = auth.hash_pool.checks
    for _ in range(3):  # a device reconnecting
        client = await auth.authenticate_password("lamp-agent", "agent-password")
        assert client.id == "lamp-agent"
    assert auth.hash_pool.checks == checked
    with pytest.raises(AuthenticationFailed):  # a wrong one is still checked
        await auth.authenticate_password("lamp-agent", "agent-passwore")
    assert auth.hash_pool.checks == checked + 1


async def test_remembered_passwords_follow_password_role_and_removal(auth):
    await auth.authenticate_password("alice", "alice-password")
    auth.update_client("alice", role="manager")
    assert (await auth.authenticate_password("alice", "alice-password")).role == "manager"
    auth.update_client("alice", password="alice-password-2")
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate_password("alice", "alice-password")
    assert (await auth.authenticate_password("alice", "alice-password-2")).id == "alice"
    auth.remove_client("alice")
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate_password("alice", "alice-password-2")


async def test_refresh_takes_a_token_only_shortly_after_its_expiry(auth):
    token = (await auth.login("lamp-agent", "agent-password"))["token"]
    session_id = auth.authenticate_token(token).session_id
    grace = auth.config.refresh_grace["agent"]
    lately = auth.signer.issue("lamp-agent", "agent", session_id, lifetime=-(grace - 60))
    assert auth.refresh(lately)["clientID"] == "lamp-agent"
    stale = auth.signer.issue("lamp-agent", "agent", session_id, lifetime=-(grace + 60))
    with pytest.raises(AuthenticationFailed):
        auth.refresh(stale)


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


async def test_signing_key_and_admin_password_files_are_private(tmp_path, store):
    auth = make_auth(tmp_path / "home", store)
    path = auth.ensure_admin()
    assert path is not None and auth.ensure_admin() is None  # only on first run
    for file in (tmp_path / "home" / "admin.password", tmp_path / "home/keys/token-signing.key"):
        assert stat.S_IMODE(os.stat(file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "home" / "keys").st_mode) == 0o700
    password = (tmp_path / "home" / "admin.password").read_text().strip()
    assert (await auth.authenticate_password("admin", password)).role == "admin"


async def test_restart_keeps_clients_sessions_and_revocations(tmp_path):
    home = tmp_path / "home"
    with open_store(tmp_path / "store") as store:
        auth = make_auth(home, store)
        auth.add_client("carol", "consumer", "viewer", password="carol-password")
        kept = (await auth.login("carol", "carol-password"))["token"]
        ended = (await auth.login("carol", "carol-password"))["token"]
        auth.logout(ended)
    with open_store(tmp_path / "store") as store:
        auth = make_auth(home, store)
        assert auth.authenticate_token(kept).id == "carol"
        with pytest.raises(AuthenticationFailed):
            auth.authenticate_token(ended)
        assert (await auth.authenticate_password("carol", "carol-password")).id == "carol"
        assert TokenSigner.load_or_create(home).verify(kept).client_id == "carol"
