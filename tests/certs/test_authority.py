"""The CA: made once on first use, the same CA after every restart, files kept private."""

import stat
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bucketstore import open_store
from certs import CertificateAuthority, CertificateError

from .conftest import T0


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_first_use_creates_a_self_signed_p256_ca(ca, home):
    certificate = x509.load_pem_x509_certificate((home / "certs" / "ca.pem").read_bytes())
    assert certificate == ca.certificate
    assert ca.ca_cert_pem == (home / "certs" / "ca.pem").read_bytes()
    assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
    assert certificate.public_key().curve.name == "secp256r1"
    assert certificate.issuer == certificate.subject
    certificate.verify_directly_issued_by(certificate)  # self-signed
    (cn,) = certificate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    assert cn.value.startswith("wothub CA ") and len(cn.value) > len("wothub CA ")
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature


def test_key_is_0600_and_directory_0700(ca, home):
    assert mode(home / "certs") == 0o700
    assert mode(home / "certs" / "ca.key") == 0o600
    assert b"PRIVATE KEY" in (home / "certs" / "ca.key").read_bytes()


def test_restart_loads_the_same_ca(tmp_path, home, store):
    first = CertificateAuthority.load_or_create(home, store.bucket("certs"))
    key_before = (home / "certs" / "ca.key").read_bytes()
    issued, _ = first.generate_for("alice")
    store.close()

    with open_store(tmp_path / "store") as reopened:
        again = CertificateAuthority.load_or_create(home, reopened.bucket("certs"))
        assert again.ca_cert_pem == first.ca_cert_pem
        assert (home / "certs" / "ca.key").read_bytes() == key_before
        # What the first one issued verifies with the reloaded one.
        assert again.verify_client_certificate(issued.cert_pem) == "alice"


def test_two_homes_get_two_different_cas(tmp_path, store):
    one = CertificateAuthority.load_or_create(tmp_path / "one", store.bucket("one"))
    two = CertificateAuthority.load_or_create(tmp_path / "two", store.bucket("two"))
    assert one.certificate.subject != two.certificate.subject
    assert one.ca_cert_pem != two.ca_cert_pem


@pytest.mark.parametrize("missing", ["ca.pem", "ca.key"])
def test_half_a_ca_is_refused_not_replaced(ca, home, store, missing):
    (home / "certs" / missing).unlink()
    with pytest.raises(CertificateError, match=f"{missing} is missing"):
        CertificateAuthority.load_or_create(home, store.bucket("certs"))
    assert not (home / "certs" / missing).exists()


def test_a_key_that_is_not_the_cas_is_refused(ca, home, store, tmp_path):
    other = CertificateAuthority.load_or_create(tmp_path / "other", store.bucket("other"))
    (home / "certs" / "ca.key").write_bytes((tmp_path / "other/certs/ca.key").read_bytes())
    with pytest.raises(CertificateError, match="is not the key of"):
        CertificateAuthority.load_or_create(home, store.bucket("certs"))
    assert other.ca_cert_pem != ca.ca_cert_pem


def test_a_corrupt_ca_file_is_refused_with_its_path(ca, home, store):
    (home / "certs" / "ca.pem").write_bytes(b"not a certificate")
    with pytest.raises(CertificateError, match=r"ca\.pem"):
        CertificateAuthority.load_or_create(home, store.bucket("certs"))


def test_ca_lifetime_and_bad_arguments(tmp_path, store):
    ca = CertificateAuthority.load_or_create(tmp_path / "a", store.bucket("a"), ca_days=10, now=T0)
    assert (ca.certificate.not_valid_after_utc - T0).days == 10
    with pytest.raises(CertificateError, match="ca_days"):
        CertificateAuthority.load_or_create(tmp_path / "b", store.bucket("b"), ca_days=0)
    with pytest.raises(CertificateError, match="timezone-aware"):
        CertificateAuthority.load_or_create(
            tmp_path / "c", store.bucket("c"), now=T0.replace(tzinfo=None)
        )


def test_a_ca_made_elsewhere_without_a_key_identifier_still_issues(tmp_path, store):
    # With no subject key identifier to copy, the authority key identifier of what it
    # issues is computed from the CA's public key (RFC 5280 method 1).
    home = tmp_path / "brought"
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a CA made elsewhere")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    (home / "certs").mkdir(parents=True)
    (home / "certs/ca.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (home / "certs/ca.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ca = CertificateAuthority.load_or_create(home, store.bucket("brought"))
    issued, _ = ca.generate_for("alice")
    assert ca.verify_client_certificate(issued.cert_pem) == "alice"
    extensions = x509.load_pem_x509_certificate(issued.cert_pem).extensions
    aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    expected = x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
    assert aki.key_identifier == expected
