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


def test_a_remembered_token_of_an_ended_session_is_refused(auth):
    token = auth.new_token("alice")["token"]
    auth.authenticate_token(token)
    auth.logout(token)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(token)


def test_a_changed_token_is_checked_in_full(auth):
    token = auth.new_token("alice")["token"]
    auth.authenticate_token(token)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_token(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
