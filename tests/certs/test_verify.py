"""verify_client_certificate: what it accepts, and why it refuses the rest."""

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bucketstore import open_store
from certs import CertificateAuthority, CertificateError
from certs.keys import new_key

from .conftest import make_csr


def test_a_valid_certificate_gives_its_client_id(ca):
    issued = ca.issue_from_csr(make_csr("someone-else")[0], "alice")
    certificate = x509.load_pem_x509_certificate(issued.cert_pem)
    der = certificate.public_bytes(serialization.Encoding.DER)
    # PEM, DER (what ssl's getpeercert(binary_form=True) gives) or an object.
    assert ca.verify_client_certificate(issued.cert_pem) == "alice"
    assert ca.verify_client_certificate(der) == "alice"
    assert ca.verify_client_certificate(certificate) == "alice"


def test_expired(ca):
    issued, _ = ca.generate_for("alice", days=30, now=ca.certificate.not_valid_before_utc)
    with pytest.raises(CertificateError, match=r"^expired on "):
        ca.verify_client_certificate(issued.cert_pem, now=issued.not_after + timedelta(seconds=1))
    # ... and it was valid inside its window.
    assert ca.verify_client_certificate(issued.cert_pem, now=issued.not_after) == "alice"


def test_issued_in_the_past_is_expired_now(ca):
    issued, _ = ca.generate_for("alice", days=1, now=datetime.now(UTC) - timedelta(days=400))
    with pytest.raises(CertificateError, match=r"^expired on "):
        ca.verify_client_certificate(issued.cert_pem)


def test_not_yet_valid(ca):
    issued, _ = ca.generate_for("alice", now=datetime.now(UTC) + timedelta(days=10))
    with pytest.raises(CertificateError, match=r"^not yet valid"):
        ca.verify_client_certificate(issued.cert_pem)


def test_revoked_and_still_revoked_after_reopening_the_store(tmp_path, home, store):
    ca = CertificateAuthority.load_or_create(home, store.bucket("certs"))
    issued, _ = ca.generate_for("alice")
    ca.revoke(issued.serial)
    with pytest.raises(CertificateError, match=r"^revoked on "):
        ca.verify_client_certificate(issued.cert_pem)
    store.close()

    with open_store(tmp_path / "store") as reopened:
        again = CertificateAuthority.load_or_create(home, reopened.bucket("certs"))
        with pytest.raises(CertificateError, match=r"^revoked on "):
            again.verify_client_certificate(issued.cert_pem)


def test_signed_by_another_ca(ca, tmp_path, store):
    other = CertificateAuthority.load_or_create(tmp_path / "other", store.bucket("other"))
    issued, _ = other.generate_for("alice")
    assert other.verify_client_certificate(issued.cert_pem) == "alice"
    with pytest.raises(CertificateError, match=r"^signed by another CA"):
        ca.verify_client_certificate(issued.cert_pem)


def test_another_ca_with_the_same_name_is_caught_by_the_signature(ca, tmp_path, store):
    # An impostor CA copying this hub CA's subject name, with its own key.
    impostor_home = tmp_path / "impostor"
    key = new_key()
    impostor_cert = (
        x509.CertificateBuilder()
        .subject_name(ca.certificate.subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(ca.certificate.not_valid_before_utc)
        .not_valid_after(ca.certificate.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, ca.certificate.signature_hash_algorithm)
    )
    (impostor_home / "certs").mkdir(parents=True)
    (impostor_home / "certs/ca.pem").write_bytes(
        impostor_cert.public_bytes(serialization.Encoding.PEM)
    )
    (impostor_home / "certs/ca.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    impostor = CertificateAuthority.load_or_create(impostor_home, store.bucket("impostor"))
    issued, _ = impostor.generate_for("admin")
    with pytest.raises(CertificateError, match="signature does not verify"):
        ca.verify_client_certificate(issued.cert_pem)


def test_a_server_certificate_is_not_a_client_certificate(ca):
    server = ca.ensure_server_certificate([])
    with pytest.raises(CertificateError, match=r"^not a client certificate"):
        ca.verify_client_certificate(server.cert_path.read_bytes())


def test_the_ca_certificate_is_not_a_client_certificate(ca):
    with pytest.raises(CertificateError, match=r"^not a client certificate"):
        ca.verify_client_certificate(ca.ca_cert_pem)


def test_a_certificate_missing_from_the_record_is_an_unknown_serial(ca, tmp_path, store):
    # Signed by this CA but not in this bucket (say, the store was replaced).
    issued, _ = ca.generate_for("alice")
    elsewhere = CertificateAuthority.load_or_create(ca.directory.parent, store.bucket("empty"))
    with pytest.raises(CertificateError, match=r"^unknown serial"):
        elsewhere.verify_client_certificate(issued.cert_pem)


@pytest.mark.parametrize("garbage", [b"garbage", b"", b"-----BEGIN CERTIFICATE-----\n", "str"])
def test_garbage_is_not_a_certificate(ca, garbage):
    with pytest.raises(CertificateError, match="certificate"):
        ca.verify_client_certificate(garbage)
