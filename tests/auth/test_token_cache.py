"""The signer remembers tokens whose signature it checked; that must never let through
what a full check refuses."""

from __future__ import annotations

import pytest

from auth.errors import AuthenticationFailed
from auth.tokens import TokenError
from vocabulary import clock


def test_a_remembered_token_still_expires(auth, monkeypatch):
    token = auth.new_token("alice")["token"]
    claims = auth.signer.verify(token)
    assert auth.signer.verify(token) is claims  # the second time from memory
    monkeypatch.setattr(clock, "now", lambda: claims.expires + 1)
    with pytest.raises(TokenError, match="expired"):
        auth.signer.verify(token)
    assert auth.signer.verify(token, allow_expired=True) is claims  # refresh still may


def test_a_token_first_seen_expired_is_not_valid_later(auth):
    session_id = auth.authenticate_token(auth.new_token("alice")["token"]).session_id
    expired = auth.signer.issue("alice", "operator", session_id, lifetime=-10)
    auth.signer.verify(expired, allow_expired=True)  # remembered by a refresh
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(expired)


def test_a_changed_token_is_checked_in_full(auth):
    token = auth.new_token("alice")["token"]
    auth.authenticate_token(token)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))


# -- admitted tokens (AuthService remembers a token's client after a full check) ----------


def test_an_admitted_token_is_refused_once_its_session_ends(auth):
    token = auth.new_token("alice")["token"]
    first = auth.authenticate_token(token)
    assert auth.authenticate_token(token) is first  # the second time from memory
    auth.logout(token)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(token)


def test_an_admitted_token_of_a_disabled_or_removed_client_is_refused(auth):
    token = auth.new_token("alice")["token"]
    auth.authenticate_token(token)
    auth.update_client("alice", enabled=False)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(token)
    auth.add_client("bob", "consumer", "viewer", password="bob-password")
    token = auth.new_token("bob")["token"]
    auth.authenticate_token(token)
    auth.remove_client("bob")
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(token)


def test_an_admitted_token_carries_its_clients_new_role(auth):
    token = auth.new_token("alice")["token"]
    assert auth.authenticate_token(token).role == "operator"
    auth.update_client("alice", role="viewer")
    assert auth.authenticate_token(token).role == "viewer"


def test_an_admitted_token_expires_with_its_session(auth, monkeypatch):
    token = auth.new_token("alice")["token"]
    client = auth.authenticate_token(token)
    session = auth.sessions.get(client.session_id)
    claims = auth.signer.verify(token)
    assert claims.expires <= session.expires
    monkeypatch.setattr(clock, "now", lambda: claims.expires)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(token)


def test_an_admitted_token_is_refused_when_its_session_ends_before_it(auth, monkeypatch):
    """The memory keeps to the earlier of the token's and the session's ends."""
    session = auth.sessions.create("alice", 100)
    token = auth.signer.issue("alice", "operator", session.session_id, lifetime=3600)
    auth.authenticate_token(token)
    monkeypatch.setattr(clock, "now", lambda: session.expires)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(token)
