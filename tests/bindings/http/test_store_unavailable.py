"""A store that does not answer (a cluster node without quorum: StoreUnavailableError)
on a path outside the router: a 503 problem with Retry-After, and nothing in the hub's
log as its own failure. A password login goes through Starlette (a handler of its own,
not the one for unexpected errors, which Starlette logs and raises again); a plain
property read through the fast path in front of it (PropertyReads)."""

from __future__ import annotations

import logging

from bucketstore import StoreUnavailableError
from tests.support.problems import problem_of
from tests.support.running import PASSWORD
from tests.support.tds import SIGN, sign_td


def no_answer(*args, **kwargs):
    raise StoreUnavailableError("bucket 'sessions': no answer within 5.0 s (a test's)")


async def test_a_login_the_store_cannot_write_is_a_503_with_retry_after(
    running, monkeypatch, caplog
):
    running.add_client("vic", "consumer", "viewer")
    monkeypatch.setattr(running.hub.auth.sessions, "create", no_answer)
    caplog.set_level(logging.INFO)
    async with running.session() as http:
        body = {"clientID": "vic", "password": PASSWORD}
        async with http.post("/authn/login", json=body) as response:
            problem = await problem_of(response, 503)
            assert int(response.headers["Retry-After"]) >= 1
    assert "store" in problem["detail"]
    assert "Exception in ASGI application" not in caplog.text
    assert "failed" not in caplog.text  # not logged as the hub's own failure


async def test_a_plain_property_read_the_store_cannot_answer_is_a_503(running, monkeypatch, caplog):
    running.add_thing("sign-agent", sign_td())
    token = running.add_client("vic", "consumer", "viewer")
    monkeypatch.setattr(running.hub.http.things, "read_value", no_answer)
    caplog.set_level(logging.INFO)
    async with (
        running.session(token) as http,
        http.get(f"/things/{SIGN}/properties/text") as response,
    ):
        problem = await problem_of(response, 503)
        assert int(response.headers["Retry-After"]) >= 1
    assert "store" in problem["detail"]
    assert "failed" not in caplog.text
