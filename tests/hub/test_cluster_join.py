"""Joining a node (docs/cluster.md, "Joining a node") against a real running hub: an
administrator's ``wothub cluster join-token``, then ``wothub cluster join`` from a fresh
home (in-process through ``hub.cli.main`` in a thread, and once as a subprocess), and
the endpoints behind them over HTTPS with aiohttp."""

from __future__ import annotations

import asyncio
import json
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from auth.join_tokens import BUCKET, JoinTokens
from bucketstore import StoreUnavailableError, open_store
from certs import CertificateAuthority
from hub.cli import main
from hub.cluster_secrets import SECRET_FILES, ca_fingerprint, export_secrets
from tests.support.problems import problem_of
from tests.support.running import started_hub
from tests.support.served import Process, serve_env
from vocabulary import clock

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("clean_environment")]


@pytest.fixture
def hub_options() -> dict:
    return {"nats_enabled": True}  # the NATS keys are among the secrets a node gets


@pytest.fixture
def flags(running) -> list[str]:
    """How an administrator's command reaches the running hub."""
    token = running.add_client("ada", "consumer", "admin")
    ca = running.hub.config.home / "certs" / "ca.pem"
    return ["--url", running.url, "--ca", str(ca), "--token", token]


async def wothub(capsys, *argv) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


async def join_token(capsys, flags, *extra) -> dict:
    code, out, err = await wothub(capsys, "cluster", "join-token", *flags, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


async def join(capsys, answer: dict, home: Path, **changes: str) -> tuple[int, str, str]:
    given = {"url": answer["url"], "token": answer["token"], "fp": answer["caFingerprint"]}
    given.update(changes)
    return await wothub(
        capsys,
        "cluster", "join", given["url"], "--token", given["token"],
        "--ca-fingerprint", given["fp"], "--home", home,
    )  # fmt: skip


def secrets_of(home: Path) -> dict[str, tuple[bytes, int]]:
    """Each secret file's content and mode."""
    return {
        name: ((home / name).read_bytes(), stat.S_IMODE((home / name).stat().st_mode))
        for name in SECRET_FILES
        if (home / name).exists()
    }


def other_ca(tmp_path: Path) -> CertificateAuthority:
    with open_store(tmp_path / "other-store", "memory") as store:
        return CertificateAuthority.load_or_create(tmp_path / "other", store.bucket("certs"))


# -- the join ----------------------------------------------------------------------------


async def test_a_fresh_node_joins_with_an_admins_token_and_gets_the_same_secrets(
    running, flags, capsys, tmp_path
):
    home = running.hub.config.home
    code, out, err = await wothub(capsys, "cluster", "join-token", *flags, "--ttl", "2h")
    assert code == 0, err
    fingerprint = ca_fingerprint(running.hub.ca.ca_cert_pem)
    assert f"CA fingerprint:\n  {fingerprint}\n" in out
    # The last line is the command to run on the new node, ready to paste.
    command = out.splitlines()[-1].split()
    assert command[:4] == ["wothub", "cluster", "join", running.hub.base_url]
    assert command[4::2] == ["--token", "--ca-fingerprint"]
    assert command[7] == fingerprint
    token = command[5]
    assert f"works once, until {clock.rfc3339(clock.now() + 7200)[:13]}" in out  # 2 h

    # The new node is another process, as on another machine.
    fresh = tmp_path / "fresh"
    joining = Process("join")
    await joining.start(*command[1:], "--home", str(fresh), env=serve_env())
    assert joining.process is not None
    assert await asyncio.wait_for(joining.process.wait(), 60) == 0, joining.output
    await joining.stop()
    assert f"joined the cluster of {running.hub.base_url}: installed " in joining.output
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    assert secrets_of(fresh) == secrets_of(home)
    assert {name: mode for name, (_, mode) in secrets_of(fresh).items()} == SECRET_FILES

    # The token worked once: a second node is refused, and gets nothing.
    second = tmp_path / "second"
    code, out, err = await join(
        capsys, {"url": running.url, "token": token, "caFingerprint": fingerprint}, second
    )
    assert (code, out) == (4, "")
    assert err.startswith(
        f"wothub: the hub at {running.url} refused the join token: this join token was used at "
    )
    assert secrets_of(second) == {}


async def test_a_join_answered_503_is_asked_again_after_its_retry_after(
    running, flags, capsys, tmp_path, monkeypatch
):
    """The store did not answer while the token was redeemed (a cluster node whose
    stream elects a new leader): 503 with Retry-After; the join asks again then."""
    answer = await join_token(capsys, flags)
    tokens = running.hub.operations.join.tokens
    redeem, refused = tokens.redeem, []

    def unavailable_once(*args, **kwargs):
        if not refused:
            refused.append(True)
            raise StoreUnavailableError("bucket 'join-tokens': no answer (a test's)")
        return redeem(*args, **kwargs)

    monkeypatch.setattr(tokens, "redeem", unavailable_once)
    code, out, err = await join(capsys, answer, tmp_path / "fresh")
    assert code == 0, err
    assert refused == [True] and "joined the cluster of" in out
    assert "the hub answered 503; asking again in" in err
    assert secrets_of(tmp_path / "fresh") == secrets_of(running.hub.config.home)


async def test_an_expired_token_is_refused(running, capsys, tmp_path):
    tokens = JoinTokens(running.hub.store.bucket(BUCKET))
    token, record = tokens.create("ada", ttl=60, now=clock.now() - 61)
    answer = {
        "url": running.url,
        "token": token,
        "caFingerprint": ca_fingerprint(running.hub.ca.ca_cert_pem),
    }
    code, out, err = await join(capsys, answer, tmp_path / "fresh")
    assert (code, out) == (4, "")
    assert err == (
        f"wothub: the hub at {running.url} refused the join token: this join token expired "
        f"at {clock.rfc3339(record.expires)}; ask an administrator for a new one\n"
    )
    assert not (tmp_path / "fresh").exists()


async def test_a_wrong_fingerprint_is_refused_before_the_token_is_sent(
    running, flags, capsys, tmp_path
):
    answer = await join_token(capsys, flags)
    wrong = ca_fingerprint(other_ca(tmp_path).ca_cert_pem)
    fresh = tmp_path / "fresh"
    code, out, err = await join(capsys, answer, fresh, fp=wrong.upper().replace("SHA", "sha"))
    assert (code, out) == (3, "")
    assert err == (
        f"wothub: the hub at {answer['url']} is not the cluster's: its CA fingerprint is "
        f"{answer['caFingerprint']}, not {wrong}; the join token was not sent. Check the URL "
        f"and --ca-fingerprint (`wothub cluster join-token` prints both)\n"
    )
    assert not fresh.exists()
    # The token was never sent: it still works.
    code, out, err = await join(capsys, answer, fresh)
    assert code == 0, err
    assert secrets_of(fresh) == secrets_of(running.hub.config.home)


async def test_a_server_that_adds_its_own_ca_to_the_clusters_gets_no_token(
    running, flags, capsys, tmp_path
):
    # A server in the middle answers GET /cluster/ca with the cluster's CA (which
    # matches the fingerprint) followed by its own CA, and presents a certificate of its
    # own CA. Only the cluster's CA is trusted, so the token never reaches it.
    answer = await join_token(capsys, flags)
    attacker = other_ca(tmp_path)
    attacker.ensure_server_certificate([])
    posted: list[str] = []
    served = running.hub.ca.ca_cert_pem + attacker.ca_cert_pem

    class InTheMiddle(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(served)))
            self.end_headers()
            self.wfile.write(served)

        def do_POST(self) -> None:
            posted.append(self.headers.get("Authorization", ""))
            self.send_response(500)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), InTheMiddle)
    server.socket = attacker.ssl_context_for_server().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}"
        code, out, err = await join(capsys, answer, tmp_path / "fresh", url=url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert (code, out) == (3, "")
    assert err.startswith(
        f"wothub: the hub at {url} has the cluster's CA, but its server certificate does "
        f"not verify against it ("
    )
    assert "the join token was not sent" in err
    assert posted == []
    assert not (tmp_path / "fresh").exists()
    code, _, err = await join(capsys, answer, tmp_path / "fresh")  # the token still works
    assert code == 0, err


async def test_a_home_with_secrets_of_its_own_is_refused_before_the_token_is_sent(
    running, flags, capsys, tmp_path
):
    answer = await join_token(capsys, flags)
    other_ca(tmp_path)  # tmp_path/other has a CA of its own
    code, out, err = await join(capsys, answer, tmp_path / "other")
    assert (code, out) == (2, "")
    assert "already has secrets of its own" in err and "the join token was not sent" in err
    code, _, err = await join(capsys, answer, tmp_path / "fresh")
    assert code == 0, err


async def test_bad_join_arguments(running, capsys, tmp_path, unused_tcp_port):
    answer = {"url": running.url, "token": "t", "caFingerprint": "sha256:" + "0" * 64}
    code, _, err = await join(capsys, answer, tmp_path / "h", fp="md5:abc")
    assert code == 2 and "--ca-fingerprint md5:abc is not a CA fingerprint" in err
    code, _, err = await join(capsys, answer, tmp_path / "h", url="http://127.0.0.1:1")
    assert code == 2 and "is not the address of a hub" in err
    url = f"https://127.0.0.1:{unused_tcp_port}"
    code, _, err = await join(capsys, answer, tmp_path / "h", url=url)
    assert (code, err) == (
        3,
        f"wothub: cannot reach the hub at {url}: Connection refused; check the URL, and "
        f"that `wothub serve` is running there\n",
    )
    assert not (tmp_path / "h").exists()


# -- who may create a token --------------------------------------------------------------


async def test_only_an_administrator_may_create_a_token(running, capsys):
    ca = running.hub.config.home / "certs" / "ca.pem"
    for client_id, role in (("mia", "manager"), ("otto", "operator"), ("vera", "viewer")):
        token = running.add_client(client_id, "consumer", role)
        code, out, err = await wothub(
            capsys, "cluster", "join-token", "--url", running.url, "--ca", ca, "--token", token
        )
        assert (code, out) == (4, "")
        assert err == (
            f"wothub: not allowed: /admin/join-token is for administrators; {client_id} is "
            f"not one; log in as a client whose role allows it\n"
        )
        async with running.session(token) as session:
            response = await session.post("/admin/join-token")
            await problem_of(response, 403)
    async with running.session() as anonymous:
        await problem_of(await anonymous.post("/admin/join-token"), 401)
    assert running.hub.store.bucket(BUCKET).count() == 0


async def test_the_time_to_live_is_checked(running, flags, capsys):
    code, out, err = await wothub(capsys, "cluster", "join-token", *flags, "--ttl", "30s")
    assert (code, out) == (1, "")
    assert err.startswith(
        'wothub: the hub answered 400 Bad Request: send {"ttl": seconds} with 60 to 604800 '
    )
    code, _, err = await wothub(capsys, "cluster", "join-token", *flags, "--ttl", "soon")
    assert code == 2 and "'soon' is not a duration" in err
    assert running.hub.store.bucket(BUCKET).count() == 0


# -- the endpoints -----------------------------------------------------------------------


async def test_two_joins_with_one_token_at_once_one_gets_the_secrets(running, flags, capsys):
    answer = await join_token(capsys, flags)
    async with running.session(answer["token"]) as session:
        responses = await asyncio.gather(
            session.post("/cluster/join"), session.post("/cluster/join")
        )
        statuses = sorted(response.status for response in responses)
        assert statuses == [200, 403]
        won = next(response for response in responses if response.status == 200)
        assert won.headers["Cache-Control"] == "no-store"
        assert (await won.json())["secrets"] == export_secrets(running.hub.config.home)
        lost = next(response for response in responses if response.status == 403)
        assert "used" in (await problem_of(lost, 403))["detail"]


async def test_the_ca_certificate_is_public(running):
    async with running.session() as anonymous:
        response = await anonymous.get("/cluster/ca")
        assert response.status == 200
        assert response.content_type == "application/x-pem-file"
        assert await response.read() == running.hub.ca.ca_cert_pem


async def test_wrong_tokens_are_throttled_as_failed_logins(tmp_path):
    # After two failures from an address it must wait, for joins and logins alike.
    async with started_hub(
        tmp_path / "home", nats_enabled=True, login_throttle={"source_free": 2}
    ) as running:
        tokens = JoinTokens(running.hub.store.bucket(BUCKET))
        good, _ = tokens.create("ada")
        async with running.session() as anonymous:
            missing = await problem_of(await anonymous.post("/cluster/join"), 401)
            assert missing["detail"] == "send the join token as Authorization: Bearer <token>"
        async with running.session("not-a-token") as guesser:
            for _ in range(2):
                unknown = await problem_of(await guesser.post("/cluster/join"), 401)
                assert unknown["detail"].startswith("not a join token of this cluster")
        async with running.session(good) as session:
            response = await session.post("/cluster/join")
            throttled = await problem_of(response, 429)
            assert "too many failed logins from this address" in throttled["detail"]
            assert int(response.headers["Retry-After"]) >= 1
            login = {"clientID": "admin", "password": "whatever it is"}
            await problem_of(await session.post("/authn/login", json=login), 429)
        # The good token was not looked at, so it is not spent.
        assert tokens.redeem(good, used_by="127.0.0.1").used is not None
