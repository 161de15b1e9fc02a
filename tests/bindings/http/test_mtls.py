"""Client certificates (mutual TLS) over the hub's HTTPS: a certificate the hub's CA issued
authenticates its client without any token, with that client's role; a revoked
certificate or one of a removed or disabled client is refused with 401; a certificate
from another CA does not even get through the TLS handshake. Real aiohttp clients, and
curl."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess

import aiohttp
import pytest

from bucketstore import open_store
from certs import CertificateAuthority
from tests.support.problems import PROBLEM
from tests.support.running import PASSWORD
from tests.support.tds import lamp_td

pytestmark = pytest.mark.timeout(60)

TD_JSON = "application/td+json"


class Identity:
    """A client certificate and its key in files, as a device would keep them."""

    def __init__(self, directory, issued, key_pem: bytes) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.issued = issued
        self.cert_path = directory / "client.pem"
        self.key_path = directory / "client.key"
        self.cert_path.write_bytes(issued.cert_pem)
        self.key_path.write_bytes(key_pem)
        self.key_path.chmod(0o600)


def issue(running, tmp_path, client_id: str, role: str, kind: str = "consumer") -> Identity:
    """A client (no password needed) with a hub-issued certificate."""
    running.hub.auth.add_client(client_id, kind, role)
    issued, key_pem = running.hub.ca.generate_for(client_id)
    assert issued.client_id == client_id
    return Identity(tmp_path / "identities" / client_id, issued, key_pem)


def session_with(
    running, identity: Identity | None, tls: ssl.TLSVersion | None = None, **kwargs
) -> aiohttp.ClientSession:
    context = ssl.create_default_context(cadata=running.hub.ca.ca_cert_pem.decode())
    if tls is not None:
        context.maximum_version = tls
    if identity is not None:
        context.load_cert_chain(identity.cert_path, identity.key_path)
    return aiohttp.ClientSession(running.url, connector=aiohttp.TCPConnector(ssl=context), **kwargs)


def basic(client_id: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


async def status_of(session, method: str = "GET", path: str = "/things", **kwargs) -> int:
    async with session.request(method, path, **kwargs) as resp:
        body = await resp.read()
        if resp.status >= 400:
            assert resp.content_type == PROBLEM, body
            assert json.loads(body)["status"] == resp.status
        if resp.status == 401:
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        return resp.status


async def put_lamp(session, thing_id: str) -> int:
    return await status_of(
        session,
        "PUT",
        f"/things/{thing_id}",
        data=json.dumps(lamp_td(thing_id, only=("on",))),
        headers={"Content-Type": TD_JSON},
    )


async def test_a_hub_issued_certificate_authenticates_without_a_token(running, tmp_path):
    identity = issue(running, tmp_path, "sensor-1", "viewer")
    async with session_with(running, identity) as session:
        async with session.get("/things") as resp:
            assert resp.status == 200
            assert resp.content_type == "application/ld+json"
            assert isinstance(await resp.json(content_type=None), list)
        assert "Authorization" not in session.headers
    async with session_with(running, None) as anonymous:  # the same without the certificate
        assert await status_of(anonymous) == 401


async def test_the_certificates_client_role_applies(running, tmp_path):
    viewer = issue(running, tmp_path, "watcher", "viewer")
    admin = issue(running, tmp_path, "boss", "admin")
    async with session_with(running, admin) as session:
        assert await put_lamp(session, "urn:dev:ops:lamp-1") == 201
    async with session_with(running, viewer) as session:
        assert await put_lamp(session, "urn:dev:ops:lamp-2") == 403
        assert await status_of(session, "DELETE", "/things/urn:dev:ops:lamp-1") == 403
        assert await status_of(session, "GET", "/things/urn:dev:ops:lamp-1") == 200
        # A role change applies to the next request on the same connection.
        running.hub.auth.update_client("watcher", role="admin")
        assert await put_lamp(session, "urn:dev:ops:lamp-2") == 201


async def test_an_agent_registers_its_own_td_with_its_certificate(running, tmp_path):
    device = issue(running, tmp_path, "lamp-agent", "agent", kind="agent")
    other = issue(running, tmp_path, "other-agent", "agent", kind="agent")
    async with session_with(running, device) as session:
        assert await put_lamp(session, "urn:dev:ops:agent-lamp") == 201
        async with session.get("/things") as resp:
            listed = await resp.json(content_type=None)
        assert [td["id"] for td in listed] == ["urn:dev:ops:agent-lamp"]
    async with session_with(running, other) as session:
        assert await put_lamp(session, "urn:dev:ops:agent-lamp") == 409
        assert await status_of(session, "GET", "/things/urn:dev:ops:agent-lamp") == 403


async def test_a_revoked_certificate_is_401(running, tmp_path):
    identity = issue(running, tmp_path, "sensor-2", "viewer")
    async with session_with(running, identity) as session:
        assert await status_of(session) == 200
        running.hub.ca.revoke(identity.issued.serial)
        # Revocation is checked per request: even on the connection already open.
        assert await status_of(session) == 401
    async with session_with(running, identity) as session:
        assert await status_of(session) == 401
    # A new certificate for the same client works.
    again = running.hub.ca.generate_for("sensor-2")
    fresh = Identity(tmp_path / "fresh", *again)
    async with session_with(running, fresh) as session:
        assert await status_of(session) == 200


async def test_a_removed_clients_certificate_is_401(running, tmp_path):
    identity = issue(running, tmp_path, "sensor-3", "viewer")
    async with session_with(running, identity) as session:
        assert await status_of(session) == 200
        running.hub.auth.remove_client("sensor-3")
        assert await status_of(session) == 401
    async with session_with(running, identity) as session:
        assert await status_of(session) == 401


async def test_a_disabled_clients_certificate_is_401_until_enabled(running, tmp_path):
    identity = issue(running, tmp_path, "sensor-4", "viewer")
    running.hub.auth.update_client("sensor-4", enabled=False)
    async with session_with(running, identity) as session:
        assert await status_of(session) == 401
        running.hub.auth.update_client("sensor-4", enabled=True)
        assert await status_of(session) == 200


async def assert_handshake_refused(running, identity: Identity, tls: ssl.TLSVersion) -> None:
    """The hub ends the TLS handshake over the client certificate: no HTTP answer at all,
    and not the client refusing the hub's certificate."""
    async with session_with(running, None, tls) as session:  # without it: an HTTP answer
        assert await status_of(session) == 401
    with pytest.raises(aiohttp.ClientError) as refused:
        async with session_with(running, identity, tls) as session, asyncio.timeout(10):
            await status_of(session)
    error = refused.value
    if tls == ssl.TLSVersion.TLSv1_2:
        # The server refuses within the handshake: the connection is never made.
        assert type(error) is aiohttp.ClientConnectorError, repr(error)
        assert isinstance(error.os_error, ConnectionResetError), repr(error.os_error)
    else:
        # In TLS 1.3 the client's side of the handshake is over before the server checks
        # the certificate: the server then drops the connection before any response.
        assert type(error) is aiohttp.ServerDisconnectedError, repr(error)


TLS_VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


@pytest.mark.parametrize("tls", TLS_VERSIONS)
async def test_a_certificate_of_another_ca_fails_the_handshake(running, tmp_path, tls):
    with open_store(tmp_path / "other-store", "memory") as store:
        other_ca = CertificateAuthority.load_or_create(tmp_path / "other-hub", store.bucket("c"))
        # Even with the same client id as a real client of this hub.
        running.hub.auth.add_client("sensor-5", "consumer", "admin")
        foreign = Identity(tmp_path / "foreign", *other_ca.generate_for("sensor-5"))
    await assert_handshake_refused(running, foreign, tls)
    # The hub goes on serving others.
    async with session_with(running, issue(running, tmp_path, "sensor-6", "viewer")) as session:
        assert await status_of(session) == 200


@pytest.mark.parametrize("tls", TLS_VERSIONS)
async def test_a_self_signed_certificate_fails_the_handshake(running, tmp_path, tls):
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sensor-7")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path / "self-signed"
    directory.mkdir()
    (directory / "client.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "client.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    identity = Identity.__new__(Identity)
    identity.cert_path, identity.key_path = directory / "client.pem", directory / "client.key"
    running.hub.auth.add_client("sensor-7", "consumer", "admin")
    await assert_handshake_refused(running, identity, tls)


async def test_an_authorization_header_takes_precedence_over_the_certificate(running, tmp_path):
    """The certificate is only looked at when no Authorization header is sent."""
    identity = issue(running, tmp_path, "sensor-8", "admin")
    viewer_token = running.add_client("reader", "consumer", "viewer")
    headers = {"Authorization": f"Bearer {viewer_token}"}
    async with session_with(running, identity, headers=headers) as session:
        assert await put_lamp(session, "urn:dev:ops:lamp-1") == 403  # as the viewer
    bad = {"Authorization": "Bearer not-a-token"}
    async with session_with(running, identity, headers=bad) as session:
        assert await status_of(session) == 401  # a bad header is not rescued
    async with session_with(running, identity) as session:
        assert await put_lamp(session, "urn:dev:ops:lamp-1") == 201


async def test_a_password_takes_precedence_over_the_certificate_and_names_agree(running, tmp_path):
    """HTTP Basic decides before the certificate too (docs/auth.md: token, password,
    certificate, as on every binding); a hub token as the Basic password counts as the
    token, and only under its own client's name."""
    identity = issue(running, tmp_path, "sensor-10", "admin")
    viewer_token = running.add_client("reader", "consumer", "viewer")
    async with session_with(running, identity, headers=basic("reader", PASSWORD)) as session:
        assert await put_lamp(session, "urn:dev:ops:lamp-2") == 403  # as the viewer
    wrong = basic("reader", "wrong password")
    async with session_with(running, identity, headers=wrong) as session:
        assert await status_of(session) == 401  # not rescued by the certificate
    token_as_password = basic("reader", viewer_token)
    async with session_with(running, None, headers=token_as_password) as session:
        assert await status_of(session) == 200
    under_another_name = basic("sensor-10", viewer_token)
    async with session_with(running, identity, headers=under_another_name) as session:
        assert await status_of(session) == 401


async def test_sse_with_a_certificate(running, tmp_path):
    identity = issue(running, tmp_path, "sensor-9", "admin")
    async with (
        session_with(running, identity) as session,
        session.get("/events") as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        assert await put_lamp(session, "urn:dev:ops:lamp-1") == 201
        lines = []
        async with asyncio.timeout(5):
            while "event: thing_created" not in lines:
                lines.append((await resp.content.readline()).decode().strip())
        assert 'data: {"id":"urn:dev:ops:lamp-1"}' in [
            (await resp.content.readline()).decode().strip()
        ]


async def test_curl_with_a_client_certificate(running, tmp_path):
    identity = issue(running, tmp_path, "curl-device", "viewer")
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
        "--cert",
        str(identity.cert_path),
        "--key",
        str(identity.key_path),
        "--write-out",
        "\n%{http_code}",
        running.url + "/things",
    )
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.decode().rpartition("\n")
    assert status == "200"
    assert isinstance(json.loads(body), list)
    without = await asyncio.to_thread(
        curl, "--write-out", "%{http_code}", "--output", "/dev/null", running.url + "/things"
    )
    assert without.stdout == b"401"
