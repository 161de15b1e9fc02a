"""The server certificate: its names, keeping and renewing it, and real TLS handshakes."""

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import stat
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs import CertificateAuthority, CertificateError

from .conftest import T0


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(certificate):
    extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return (
        set(extension.value.get_values_for_type(x509.DNSName)),
        set(extension.value.get_values_for_type(x509.IPAddress)),
    )


def test_server_certificate_names_files_and_usage(ca, home):
    server = ca.ensure_server_certificate(["hub.example.test", "10.1.2.3", "[fd00::7]"])
    assert server.issued
    assert server.cert_path == home / "certs" / "server.pem"
    assert server.key_path == home / "certs" / "server.key"
    assert stat.S_IMODE(server.key_path.stat().st_mode) == 0o600

    certificate = load(server.cert_path)
    dns, ips = sans(certificate)
    assert {"localhost", socket.gethostname().lower(), "hub.example.test"} <= dns
    assert ips == {ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", "10.1.2.3", "fd00::7")}
    assert server.not_after == certificate.not_valid_after_utc
    assert server.serial == certificate.serial_number

    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert certificate.issuer == ca.certificate.subject
    certificate.verify_directly_issued_by(ca.certificate)


def test_a_valid_certificate_is_kept(ca):
    first = ca.ensure_server_certificate(["hub.example.test"], now=T0)
    pem = first.cert_path.read_bytes()
    later = ca.ensure_server_certificate(["hub.example.test"], now=T0 + timedelta(days=300))
    assert not later.issued and later.reason == "still valid"
    assert later.serial == first.serial
    assert first.cert_path.read_bytes() == pem


def test_it_is_renewed_within_the_window_with_the_same_ca(ca, home, store):
    first = ca.ensure_server_certificate([], days=100, renew_within_days=30, now=T0)
    renewed = ca.ensure_server_certificate(
        [], days=100, renew_within_days=30, now=T0 + timedelta(days=71)
    )
    assert renewed.issued and "expires" in renewed.reason
    assert renewed.serial != first.serial
    assert renewed.not_after > first.not_after
    certificate = load(renewed.cert_path)
    certificate.verify_directly_issued_by(ca.certificate)
    # The CA itself did not change, on disk or after a restart.
    again = CertificateAuthority.load_or_create(home, store.bucket("certs"))
    assert again.ca_cert_pem == ca.ca_cert_pem


def test_new_names_or_a_lost_key_mean_a_new_certificate(ca):
    first = ca.ensure_server_certificate(["a.example.test"], now=T0)
    renamed = ca.ensure_server_certificate(["b.example.test"], now=T0)
    assert renamed.issued and renamed.reason == "the names changed"
    assert "a.example.test" not in sans(load(renamed.cert_path))[0]
    renamed.key_path.unlink()
    rebuilt = ca.ensure_server_certificate(["b.example.test"], now=T0)
    assert rebuilt.issued and rebuilt.serial not in (first.serial, renamed.serial)


def test_a_certificate_from_another_ca_is_replaced(ca, tmp_path, store):
    other = CertificateAuthority.load_or_create(tmp_path / "other", store.bucket("other"))
    foreign = other.ensure_server_certificate([])
    ca.server_cert_path.write_bytes(foreign.cert_path.read_bytes())
    ca.server_key_path.write_bytes(foreign.key_path.read_bytes())
    replaced = ca.ensure_server_certificate([])
    assert replaced.issued and replaced.reason == "not signed by this CA"
    load(replaced.cert_path).verify_directly_issued_by(ca.certificate)


def test_names_are_normalized_so_the_certificate_is_kept(ca):
    names = ["*.Example.TEST", "Hub.Local.", "bücher.example", "fe80::1%eth0", "localhost"]
    first = ca.ensure_server_certificate(names, now=T0)
    dns, ips = sans(load(first.cert_path))
    assert {"*.example.test", "hub.local", "xn--bcher-kva.example"} <= dns
    assert ipaddress.ip_address("fe80::1") in ips
    assert first.names.count("localhost") == 1
    assert not ca.ensure_server_certificate(names, now=T0).issued


@pytest.mark.parametrize("bad", ["has space.example", "-dash.example", "", "a..b", "ü" * 70])
def test_bad_names_are_refused(ca, bad):
    with pytest.raises(CertificateError, match="neither an IP address nor a valid DNS name"):
        ca.ensure_server_certificate([bad])


def test_bad_lifetimes_are_refused(ca):
    with pytest.raises(CertificateError, match="less than days"):
        ca.ensure_server_certificate([], days=30, renew_within_days=30)
    with pytest.raises(CertificateError, match="days must be"):
        ca.ensure_server_certificate([], days=0)


def test_context_needs_a_server_certificate_first(ca):
    with pytest.raises(CertificateError, match="ensure_server_certificate"):
        ca.ssl_context_for_server()


# -- real TLS on 127.0.0.1 --------------------------------------------------------------


@contextlib.asynccontextmanager
async def tls_server(ca):
    """A TLS server on a free port using ``ssl_context_for_server``. It answers ``hello``
    and records, per connection, the client id from the peer certificate (None when the
    client sent none)."""
    seen = []

    async def handle(reader, writer):
        peer = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        seen.append(None if peer is None else ca.verify_client_certificate(peer))
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ca.ssl_context_for_server())
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()
        await server.wait_closed()


async def exchange(port, client_context, server_hostname="localhost"):
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context, server_hostname=server_hostname
    )
    try:
        return await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()


async def handshake(ca, client_context, server_hostname="localhost"):
    """What the server saw of one client that got its ``hello``."""
    async with tls_server(ca) as (port, seen):
        assert await exchange(port, client_context, server_hostname) == b"hello\n"
        return seen[0]


def trusting(ca):
    return ssl.create_default_context(cafile=str(ca.ca_cert_path))


async def test_tls_without_a_client_certificate(ca):
    ca.ensure_server_certificate(["hub.example.test"])
    assert await handshake(ca, trusting(ca)) is None
    # The extra name and the loopback address are in the certificate too.
    assert await handshake(ca, trusting(ca), server_hostname="hub.example.test") is None
    assert await handshake(ca, trusting(ca), server_hostname="127.0.0.1") is None


async def test_tls_with_a_client_certificate_the_server_sees_it(ca, tmp_path):
    ca.ensure_server_certificate([])
    issued, key_pem = ca.generate_for("lamp-agent")
    (tmp_path / "client.pem").write_bytes(issued.cert_pem)
    (tmp_path / "client.key").write_bytes(key_pem)
    context = trusting(ca)
    context.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
    assert await handshake(ca, context) == "lamp-agent"


async def test_tls_client_refuses_a_server_from_another_ca(ca, tmp_path, store):
    ca.ensure_server_certificate([])
    other = CertificateAuthority.load_or_create(tmp_path / "other", store.bucket("other"))
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(ca, trusting(other))


async def test_tls_server_refuses_a_client_certificate_from_another_ca(ca, tmp_path, store):
    ca.ensure_server_certificate([])
    other = CertificateAuthority.load_or_create(tmp_path / "other", store.bucket("other"))
    issued, key_pem = other.generate_for("intruder")
    (tmp_path / "client.pem").write_bytes(issued.cert_pem)
    (tmp_path / "client.key").write_bytes(key_pem)
    context = trusting(ca)
    context.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
    async with tls_server(ca) as (port, seen):
        # In TLS 1.3 the client's handshake ends before the server checks its certificate,
        # so the refusal shows as an alert or a closed connection on the first read.
        try:
            reply = await exchange(port, context)
        except (ssl.SSLError, ConnectionError):
            reply = None
        assert reply in (None, b"")
        assert seen == []  # the server never accepted the connection


def test_node_certificate_serves_both_ends_of_a_route_and_is_no_login(ca, home):
    node = ca.ensure_node_certificate("n1", ["node1.example.test"])
    assert node.issued and node.cert_path == home / "certs" / "node.pem"
    certificate = load(node.cert_path)
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert certificate.subject.rfc4514_string() == "CN=wothub node n1"
    assert "node1.example.test" in sans(certificate)[0]
    assert not ca.ensure_node_certificate("n1", ["node1.example.test"]).issued  # kept
    # Not in the record of certificates issued to clients: no login with it.
    with pytest.raises(CertificateError, match="unknown serial"):
        ca.verify_client_certificate(node.cert_path.read_bytes())
