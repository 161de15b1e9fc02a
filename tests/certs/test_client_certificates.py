"""Issuing client certificates from a CSR or with a new key pair; listing and revoking."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bucketstore import open_store
from certs import CertificateAuthority, CertificateError

from .conftest import T0, make_csr


def public_der(key):
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def common_name(certificate):
    return certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_issue_from_csr_names_the_given_client_and_keeps_the_csr_key(ca):
    csr_pem, key = make_csr("someone-else")
    issued = ca.issue_from_csr(csr_pem, "alice", now=T0)
    certificate = x509.load_pem_x509_certificate(issued.cert_pem)

    assert common_name(certificate) == "alice" == issued.client_id
    assert public_der(certificate.public_key()) == public_der(key.public_key())
    certificate.verify_directly_issued_by(ca.certificate)
    extensions = certificate.extensions
    assert list(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert certificate.not_valid_before_utc == T0 - timedelta(minutes=5) == issued.not_before
    assert certificate.not_valid_after_utc == T0 + timedelta(days=365) == issued.not_after
    assert issued.serial == certificate.serial_number
    assert 0 < issued.serial < 2**128
    assert not issued.revoked and issued.revoked_at is None


def test_serials_are_random(ca):
    serials = {ca.issue_from_csr(make_csr()[0], "alice").serial for _ in range(5)}
    assert len(serials) == 5


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP384R1()),
        ed25519.Ed25519PrivateKey.generate(),
        rsa.generate_private_key(65537, 2048),
    ],
    ids=["P-384", "Ed25519", "RSA-2048"],
)
def test_other_accepted_key_types(ca, key):
    issued = ca.issue_from_csr(make_csr(key=key)[0], "bob", days=30)
    certificate = x509.load_pem_x509_certificate(issued.cert_pem)
    assert public_der(certificate.public_key()) == public_der(key.public_key())
    assert ca.verify_client_certificate(issued.cert_pem) == "bob"


@pytest.mark.parametrize(
    "key, named",
    [
        (rsa.generate_private_key(65537, 1024), "RSA 1024"),
        (ec.generate_private_key(ec.SECP256K1()), "EC secp256k1"),
        (dsa.generate_private_key(2048), "DSA"),
    ],
    ids=["RSA-1024", "secp256k1", "DSA"],
)
def test_weak_or_unusual_keys_are_refused(ca, key, named):
    with pytest.raises(CertificateError, match=f"unsupported key type {named}"):
        ca.issue_from_csr(make_csr(key=key)[0], "bob")
    assert ca.list_issued() == []


def test_a_csr_whose_content_was_altered_is_refused(ca):
    csr_pem, _ = make_csr("someone-else")
    der = x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER)
    tampered = der.replace(b"someone-else", b"someone-elsf")
    assert tampered != der
    pem = x509.load_der_x509_csr(tampered).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CertificateError, match="signature is invalid"):
        ca.issue_from_csr(pem, "alice")
    assert ca.list_issued() == []


def test_a_csr_whose_signature_was_altered_is_refused(ca):
    csr_pem, _ = make_csr()
    csr = x509.load_pem_x509_csr(csr_pem)
    der = csr.public_bytes(serialization.Encoding.DER)
    # The ECDSA signature's last byte is the last byte of the request.
    tampered = der[:-1] + bytes([der[-1] ^ 0x01])
    pem = x509.load_der_x509_csr(tampered).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CertificateError, match="signature is invalid"):
        ca.issue_from_csr(pem, "alice")


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x01garbage",
        b"",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        None,
    ],
)
def test_garbage_is_not_a_csr(ca, garbage):
    with pytest.raises(CertificateError, match="not a certificate signing request"):
        ca.issue_from_csr(garbage, "alice")


def test_a_certificate_is_not_a_csr(ca):
    issued, _ = ca.generate_for("alice")
    with pytest.raises(CertificateError, match="not a certificate signing request"):
        ca.issue_from_csr(issued.cert_pem, "alice")


@pytest.mark.parametrize("client_id", ["", "x" * 65, "a\0b", "line\nbreak", None, 7])
def test_bad_client_ids_are_refused(ca, client_id):
    with pytest.raises(CertificateError, match="client id"):
        ca.issue_from_csr(make_csr()[0], client_id)


@pytest.mark.parametrize("days", [0, -1, 1.5, True, "30"])
def test_bad_days_are_refused(ca, days):
    with pytest.raises(CertificateError, match="days must be"):
        ca.generate_for("alice", days=days)


def test_validity_never_outlasts_the_ca(tmp_path, store):
    short = CertificateAuthority.load_or_create(
        tmp_path / "short", store.bucket("short"), ca_days=10, now=T0
    )
    issued, _ = short.generate_for("alice", days=365, now=T0)
    assert issued.not_after == short.certificate.not_valid_after_utc
    with pytest.raises(CertificateError, match="CA expired"):
        short.generate_for("alice", now=T0 + timedelta(days=11))


def test_generate_for_returns_the_matching_private_key(ca, store):
    issued, key_pem = ca.generate_for("lamp-agent", days=30)
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, not encrypted
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    certificate = x509.load_pem_x509_certificate(issued.cert_pem)
    assert public_der(certificate.public_key()) == public_der(key.public_key())
    assert common_name(certificate) == "lamp-agent"
    stored = b"".join(value for _, value in store.bucket("certs").items())
    assert issued.cert_pem.replace(b"\n", b"\\n") in stored  # the record is there...
    assert key_pem.split(b"\n")[1] not in stored.replace(b"\\n", b"\n")  # ...the key is not


def test_list_issued_all_and_by_client(ca):
    a1 = ca.generate_for("alice", now=T0)[0]
    b1 = ca.issue_from_csr(make_csr()[0], "bob", now=T0 + timedelta(hours=1))
    a2 = ca.generate_for("alice", now=T0 + timedelta(hours=2))[0]
    # "alice" must not pick up "alice2"'s certificates (the index is prefix-safe).
    ca.generate_for("alice2", now=T0 + timedelta(hours=3))

    assert [i.serial for i in ca.list_issued("alice")] == [a1.serial, a2.serial]
    assert [i.serial for i in ca.list_issued("bob")] == [b1.serial]
    assert ca.list_issued("nobody") == []
    assert len(ca.list_issued()) == 4
    assert ca.list_issued()[:3] == [a1, b1, a2]


def test_revoke_is_recorded_and_harmless_twice(ca):
    issued, _ = ca.generate_for("alice")
    when = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    revoked = ca.revoke(issued.serial, now=when)
    assert revoked.revoked and revoked.revoked_at == when
    assert revoked.serial == issued.serial and revoked.cert_pem == issued.cert_pem
    again = ca.revoke(issued.serial)
    assert again == revoked  # first revocation time kept
    assert ca.list_issued("alice") == [revoked]


def test_each_revocation_is_told(ca):
    told = []
    ca.on_revoked = lambda issued: told.append(issued.serial)
    a1, a2 = ca.generate_for("alice")[0], ca.generate_for("alice")[0]
    ca.revoke(a1.serial)
    ca.revoke_client("alice")  # only a2 is newly revoked
    assert told == [a1.serial, a2.serial]


def test_revoking_an_unknown_serial_is_refused(ca):
    with pytest.raises(CertificateError, match="unknown serial"):
        ca.revoke(12345)
    with pytest.raises(CertificateError, match="integer"):
        ca.revoke("12345")


def test_revoke_client_revokes_all_of_them_and_only_theirs(ca):
    a1, a2 = ca.generate_for("alice")[0], ca.generate_for("alice")[0]
    ca.revoke(a1.serial)
    b1 = ca.generate_for("bob")[0]
    newly = ca.revoke_client("alice")
    assert [i.serial for i in newly] == [a2.serial]
    assert all(i.revoked for i in ca.list_issued("alice"))
    assert not ca.list_issued("bob")[0].revoked
    assert ca.verify_client_certificate(b1.cert_pem) == "bob"


def test_records_persist_across_a_restart(tmp_path, home, store):
    ca = CertificateAuthority.load_or_create(home, store.bucket("certs"))
    kept, _ = ca.generate_for("alice")
    revoked = ca.revoke(ca.generate_for("alice")[0].serial)
    store.close()
    with open_store(tmp_path / "store") as reopened:
        again = CertificateAuthority.load_or_create(home, reopened.bucket("certs"))
        assert {i.serial: i for i in again.list_issued("alice")} == {
            kept.serial: kept,
            revoked.serial: revoked,
        }


def test_to_dict_is_json(ca):
    issued = ca.revoke(ca.generate_for("alice", now=T0)[0].serial, now=T0 + timedelta(days=1))
    data = json.loads(json.dumps(issued.to_dict()))
    assert data == {
        "serial": f"{issued.serial:032x}",
        "clientID": "alice",
        "notBefore": "2029-12-31T23:55:00.000Z",
        "notAfter": "2031-01-01T00:00:00.000Z",
        "revoked": True,
        "revokedAt": "2030-01-02T00:00:00.000Z",
        "certificate": issued.cert_pem.decode(),
    }
    assert int(data["serial"], 16) == issued.serial
