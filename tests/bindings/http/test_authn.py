"""Logging in over HTTPS and every way a request is (not) authenticated: tokens, refresh,
logout, HTTP Basic, throttled failures, tampered and foreign tokens, and changes to a
client that apply to its very next request. Real hub, real aiohttp clients, and curl."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from datetime import datetime

import aiohttp
import jwt
import pytest

from auth.errors import TooManyAttempts
from auth.tokens import TokenSigner
from tests.support.problems import PROBLEM, problem_of
from tests.support.running import PASSWORD
from tests.support.tds import lamp_td

pytestmark = pytest.mark.timeout(60)

TD_JSON = "application/td+json"


async def login(session, client_id: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
    resp = await session.post("/authn/login", json={"clientID": client_id, "password": password})
    await resp.read()
    return resp


async def status_with(running, headers: dict[str, str], path: str = "/things") -> int:
    async with running.session() as session, session.get(path, headers=headers) as resp:
        await resp.read()
        if resp.status == 401:
            assert resp.content_type == PROBLEM
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        return resp.status


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def put_lamp(session, thing_id: str = "urn:dev:ops:lamp-1", **headers: str) -> int:
    async with session.put(
        f"/things/{thing_id}",
        data=json.dumps(lamp_td(thing_id, only=("on",))),
        headers={"Content-Type": TD_JSON, **headers},
    ) as resp:
        await resp.read()
        return resp.status


# -- login -------------------------------------------------------------------------------


async def test_login_gives_a_working_token(running):
    running.hub.auth.add_client("carol", "consumer", "operator", password=PASSWORD)
    async with running.session() as session:
        resp = await login(session, "carol")
        assert resp.status == 200
        assert resp.content_type == "application/json"
        body = await resp.json()
    assert set(body) == {"token", "expires", "clientID", "role"}
    assert body["clientID"] == "carol"
    assert body["role"] == "operator"
    assert datetime.fromisoformat(body["expires"]).timestamp() > datetime.now().timestamp()
    assert await status_with(running, bearer(body["token"])) == 200


async def test_login_with_curl(running, tmp_path):
    running.hub.auth.add_client("curly", "consumer", "viewer", password=PASSWORD)
    ca = tmp_path / "ca.pem"
    ca.write_bytes(running.hub.ca.ca_cert_pem)

    def curl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["curl", "--silent", "--show-error", "--max-time", "20", "--cacert", str(ca), *args],
            capture_output=True,
            timeout=30,
            check=False,
        )

    done = await asyncio.to_thread(
        curl,
        "-H",
        "Content-Type: application/json",
        "--data",
        json.dumps({"clientID": "curly", "password": PASSWORD}),
        running.url + "/authn/login",
    )
    assert done.returncode == 0, done.stderr
    token = json.loads(done.stdout)["token"]
    listed = await asyncio.to_thread(
        curl, "-H", f"Authorization: Bearer {token}", "--fail", running.url + "/things"
    )
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)
    refused = await asyncio.to_thread(
        curl,
        "--write-out",
        "\n%{http_code} %{content_type}",
        "-H",
        "Content-Type: application/json",
        "--data",
        json.dumps({"clientID": "curly", "password": "wrong"}),
        running.url + "/authn/login",
    )
    body, _, status = refused.stdout.decode().rpartition("\n")
    assert status == f"401 {PROBLEM}"
    assert json.loads(body)["status"] == 401


async def test_failed_logins_are_indistinguishable(running):
    auth = running.hub.auth
    auth.add_client("dave", "consumer", "viewer", password=PASSWORD)
    auth.add_client("erin", "consumer", "viewer", password=PASSWORD)
    auth.update_client("erin", enabled=False)
    async with running.session() as session:
        answers = []
        for client_id, password in (
            ("dave", "wrong password"),
            ("nobody", PASSWORD),
            ("erin", PASSWORD),  # disabled: the right password does not help
        ):
            resp = await login(session, client_id, password)
            answers.append((resp.status, resp.headers.get("WWW-Authenticate"), await resp.read()))
    assert answers[0][0] == 401
    assert answers[0][1] is not None
    assert answers[0] == answers[1] == answers[2]
    problem = json.loads(answers[0][2])
    assert "dave" not in problem["detail"] and "nobody" not in problem["detail"]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"clientID": "x"}, ["password"]),
        ({"password": "x"}, ["clientID"]),
        ({"clientID": 7, "password": ""}, ["clientID", "password"]),
    ],
)
async def test_login_with_missing_fields_is_400(running, body, fields):
    async with running.session() as session, session.post("/authn/login", json=body) as resp:
        problem = await problem_of(resp, 400)
    assert [e["field"] for e in problem["validationErrors"]] == fields


async def test_login_with_a_body_that_is_not_an_object_is_400(running):
    async with running.session() as session:
        async with session.post("/authn/login", json=["ada", PASSWORD]) as resp:
            await problem_of(resp, 400)
        async with session.post(
            "/authn/login", data=b"clientID=ada", headers={"Content-Type": "application/json"}
        ) as resp:
            await problem_of(resp, 400)


async def test_guessing_from_one_address_is_refused_there_with_retry_after(running):
    """ThrottleConfig defaults: source_free failed logins (any client ids), then the
    address waits source_base_delay, doubling; nothing says whether an id exists."""
    config = running.hub.auth.config.throttle
    running.hub.auth.add_client("fred", "consumer", "viewer", password=PASSWORD)
    token = running.add_client("gina", "consumer", "viewer")
    async with running.session() as session:
        statuses = []
        for number in range(config.source_free):  # made-up ids and a real one
            client_id = "fred" if number % 2 else f"guess-{number}"
            statuses.append((await login(session, client_id, "wrong")).status)
        assert statuses == [401] * config.source_free

        # This address waits now, even with the right password, and is told how long.
        blocked = await login(session, "fred")
        problem = await problem_of(blocked, 429)
        retry_after = int(blocked.headers["Retry-After"])
        assert 1 <= retry_after <= int(config.source_base_delay) + 1
        assert 0 < problem["retryAfter"] <= config.source_base_delay
        unknown = await login(session, "no-such-client", "x")
        assert unknown.status == 429

    # A token is always admitted, from the same address.
    async with running.session(token) as session, session.get("/things") as resp:
        assert resp.status == 200


async def test_retry_after_is_at_least_one_second_while_blocked(running, monkeypatch):
    def blocked(source, now=None):
        raise TooManyAttempts("too many failed logins; try again later", retry_after=0.04)

    monkeypatch.setattr(running.hub.auth.throttle, "check_source", blocked)
    async with running.session() as session:
        resp = await login(session, "anyone", "x")
        await problem_of(resp, 429)
    assert int(resp.headers["Retry-After"]) >= 1


# -- refresh and logout --------------------------------------------------------------------


async def test_refresh_with_the_header_and_with_the_body(running):
    token = running.add_client("hank", "consumer", "viewer")
    async with running.session(token) as session, session.post("/authn/refresh") as resp:
        assert resp.status == 200
        by_header = await resp.json()
    assert by_header["clientID"] == "hank" and by_header["role"] == "viewer"
    assert by_header["token"] != token
    async with running.session() as session:
        async with session.post("/authn/refresh", json={"token": by_header["token"]}) as resp:
            assert resp.status == 200
            by_body = await resp.json()
        async with session.post("/authn/refresh", json={}) as resp:
            await problem_of(resp, 400)
        async with session.post("/authn/refresh", json={"token": "not.a.token"}) as resp:
            await problem_of(resp, 401)
    for new in (by_header["token"], by_body["token"]):
        assert await status_with(running, bearer(new)) == 200


async def test_an_expired_token_is_refused_but_refreshes(running):
    token = running.add_client("ivy", "consumer", "viewer")
    claims = jwt.decode(token, options={"verify_signature": False})
    expired = running.hub.auth.signer.issue("ivy", "viewer", claims["sid"], -60)
    assert await status_with(running, bearer(expired)) == 401
    async with (
        running.session() as session,
        session.post("/authn/refresh", json={"token": expired}) as resp,
    ):
        assert resp.status == 200
        fresh = (await resp.json())["token"]
    assert await status_with(running, bearer(fresh)) == 200


async def test_logout_ends_the_session(running):
    token = running.add_client("jack", "consumer", "viewer")
    async with running.session(token) as session:
        async with session.post("/authn/refresh") as resp:
            refreshed = (await resp.json())["token"]
        async with session.post("/authn/logout") as resp:
            assert resp.status == 204
            assert await resp.read() == b""
    for old in (token, refreshed):  # every token of the session
        assert await status_with(running, bearer(old)) == 401
    async with (
        running.session() as session,
        session.post("/authn/refresh", json={"token": token}) as resp,
    ):
        await problem_of(resp, 401)
    # Logging in again opens a new session.
    async with running.session() as session:
        resp = await login(session, "jack")
        fresh = (await resp.json())["token"]
    assert await status_with(running, bearer(fresh)) == 200


async def test_logout_with_the_token_in_the_body(running):
    token = running.add_client("kate", "consumer", "viewer")
    async with (
        running.session() as session,
        session.post("/authn/logout", json={"token": token}) as resp,
    ):
        assert resp.status == 204
    assert await status_with(running, bearer(token)) == 401


async def test_logout_of_one_session_keeps_the_others(running):
    first = running.add_client("leo", "consumer", "viewer")
    second = running.hub.auth.new_token("leo")["token"]
    async with running.session(first) as session, session.post("/authn/logout") as resp:
        assert resp.status == 204
    assert await status_with(running, bearer(first)) == 401
    assert await status_with(running, bearer(second)) == 200


# -- HTTP Basic, bad and foreign credentials -----------------------------------------------


async def test_http_basic(running):
    running.hub.auth.add_client("mia", "consumer", "viewer", password=PASSWORD)
    assert await status_with(running, basic("mia", PASSWORD)) == 200
    assert await status_with(running, basic("mia", "wrong")) == 401
    assert await status_with(running, basic("nobody", PASSWORD)) == 401
    # aiohttp's own encoding, too.
    header = {"Authorization": aiohttp.encode_basic_auth("mia", PASSWORD)}
    assert await status_with(running, header) == 200


async def test_http_basic_with_a_colon_in_the_password(running):
    running.hub.auth.add_client("nina", "consumer", "viewer", password="pass:word:with colons")
    assert await status_with(running, basic("nina", "pass:word:with colons")) == 200


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no colon here").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic",
        "Bearer",
        "Bearer    ",
        "Digest username=ada",
        "Token abc",
        "garbage",
    ],
)
async def test_malformed_or_unknown_authorization_is_401(running, header):
    running.add_client("olga", "consumer", "admin")
    assert await status_with(running, {"Authorization": header}) == 401


async def test_a_tampered_token_is_401(running):
    token = running.add_client("pete", "consumer", "viewer")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    # The claims changed, the signature did not.
    assert await status_with(running, bearer(f"{header}.{forged}.{signature}")) == 401
    # A flipped signature character.
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert await status_with(running, bearer(f"{header}.{payload}.{flipped}")) == 401
    # alg none.
    none = jwt.encode(claims, key=None, algorithm="none")
    assert await status_with(running, bearer(none)) == 401
    # Not a JWT at all.
    assert await status_with(running, bearer("abc")) == 401
    assert await status_with(running, bearer(token)) == 200


async def test_a_token_signed_by_another_key_is_401(running, tmp_path):
    token = running.add_client("quinn", "consumer", "admin")
    claims = jwt.decode(token, options={"verify_signature": False})
    other = TokenSigner.load_or_create(tmp_path / "another-hub")
    foreign = other.issue("quinn", "admin", claims["sid"], 3600)
    assert await status_with(running, bearer(foreign)) == 401
    async with (
        running.session() as session,
        session.post("/authn/refresh", json={"token": foreign}) as resp,
    ):
        await problem_of(resp, 401)
    assert await status_with(running, bearer(token)) == 200


async def test_a_token_for_a_session_that_does_not_exist_is_401(running):
    running.add_client("rita", "consumer", "admin")
    made_up = running.hub.auth.signer.issue("rita", "admin", "no-such-session", 3600)
    assert await status_with(running, bearer(made_up)) == 401


async def test_the_authn_endpoints_only_take_post(running):
    async with running.session() as session:
        for path in ("/authn/login", "/authn/refresh", "/authn/logout"):
            async with session.get(path) as resp:
                await problem_of(resp, 405, detail=False)


# -- changes to a client apply to its next request -----------------------------------------


async def test_a_role_change_applies_to_the_next_request(running):
    token = running.add_client("sam", "consumer", "admin")
    async with running.session(token) as session:
        assert await put_lamp(session, "urn:dev:ops:one") == 201
        running.hub.auth.update_client("sam", role="viewer")
        assert await put_lamp(session, "urn:dev:ops:two") == 403
        async with session.get("/things") as resp:
            assert resp.status == 200  # still a viewer, with the same token
        running.hub.auth.update_client("sam", role="manager")
        assert await put_lamp(session, "urn:dev:ops:two") == 403
        running.hub.auth.update_client("sam", role="admin")
        assert await put_lamp(session, "urn:dev:ops:two") == 201


async def test_a_role_change_applies_to_http_basic(running):
    running.hub.auth.add_client("tina", "consumer", "admin", password=PASSWORD)
    credentials = basic("tina", PASSWORD)
    async with running.session() as session:
        assert await put_lamp(session, "urn:dev:ops:one", **credentials) == 201
        running.hub.auth.update_client("tina", role="viewer")
        assert await put_lamp(session, "urn:dev:ops:two", **credentials) == 403


async def test_a_removed_client_is_refused(running):
    token = running.add_client("uma", "consumer", "viewer")
    async with running.session(token) as session, session.get("/things") as resp:
        assert resp.status == 200
    running.hub.auth.remove_client("uma")
    assert await status_with(running, bearer(token)) == 401
    assert await status_with(running, basic("uma", PASSWORD)) == 401
    async with (
        running.session() as session,
        session.post("/authn/refresh", json={"token": token}) as resp,
    ):
        await problem_of(resp, 401)
    # A new client of the same id does not inherit the old sessions.
    running.hub.auth.add_client("uma", "consumer", "viewer", password=PASSWORD)
    assert await status_with(running, bearer(token)) == 401


async def test_a_disabled_client_is_refused(running):
    token = running.add_client("vic", "consumer", "viewer")
    running.hub.auth.update_client("vic", enabled=False)
    assert await status_with(running, bearer(token)) == 401
    running.hub.auth.update_client("vic", enabled=True)
    # Disabling ended the sessions: the old token stays refused, a new login works.
    assert await status_with(running, bearer(token)) == 401
    assert await status_with(running, basic("vic", PASSWORD)) == 200


async def test_a_password_change_ends_the_sessions(running):
    token = running.add_client("wes", "consumer", "viewer")
    running.hub.auth.update_client("wes", password="a new password 123")
    assert await status_with(running, bearer(token)) == 401
    assert await status_with(running, basic("wes", PASSWORD)) == 401
    assert await status_with(running, basic("wes", "a new password 123")) == 200
