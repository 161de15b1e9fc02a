"""Logging in with a client certificate: the hub CA's check, then the account's.

``AuthService.authenticate_certificate`` gets the CA's ``verify_client_certificate`` (or a
wrapper that moves "now"), so these tests use a real CA, a real store and real accounts.
Every refusal is the same ``AuthenticationFailed("invalid credentials")``; only the log
says which check failed.
"""

import logging
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from auth.errors import AuthenticationFailed
from certs import CertificateAuthority
from certs.keys import new_key

REFUSED = "invalid credentials"


def at(ca, moment):
    """The CA's check as if the time were ``moment``."""
    return lambda certificate: ca.verify_client_certificate(certificate, now=moment)


def refusal(auth, certificate, verify):
    """The exception authenticate_certificate raises (it must raise)."""
    with pytest.raises(AuthenticationFailed) as refused:
        auth.authenticate_certificate(certificate, verify)
    return refused.value


def assert_plain_refusal(error):
    """Nothing in what the client gets says which check failed."""
    assert type(error) is AuthenticationFailed
    assert error.status == 401
    assert error.detail == REFUSED == str(error)
    assert error.extensions == {}
    assert error.to_dict() == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": REFUSED,
    }


def impostor_ca(ca, tmp_path, store):
    """Another CA that copied this hub CA's subject name but has its own key."""
    key = new_key()
    certificate = (
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
    home = tmp_path / "impostor"
    (home / "certs").mkdir(parents=True)
    (home / "certs" / "ca.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (home / "certs" / "ca.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return CertificateAuthority.load_or_create(home, store.bucket("impostor"))


# -- accepted ---------------------------------------------------------------------------


def test_a_valid_certificate_logs_in_as_its_client_with_its_role(auth, ca):
    issued, _ = ca.generate_for("alice")
    client = auth.authenticate_certificate(issued.cert_pem, ca.verify_client_certificate)
    assert (client.id, client.role, client.session_id) == ("alice", "operator", None)

    agent_cert, _ = ca.generate_for("lamp-agent")
    agent = auth.authenticate_certificate(agent_cert.cert_pem, ca.verify_client_certificate)
    assert (agent.id, agent.role) == ("lamp-agent", "agent")
    assert agent.is_agent


def test_the_role_comes_from_the_account_now_not_from_when_the_cert_was_issued(auth, ca):
    issued, _ = ca.generate_for("alice")
    auth.update_client("alice", role="manager")
    client = auth.authenticate_certificate(issued.cert_pem, ca.verify_client_certificate)
    assert client.role == "manager"


def test_der_and_certificate_objects_work_too(auth, ca):
    issued, _ = ca.generate_for("alice")
    certificate = x509.load_pem_x509_certificate(issued.cert_pem)
    der = certificate.public_bytes(serialization.Encoding.DER)
    for form in (der, certificate):
        assert auth.authenticate_certificate(form, ca.verify_client_certificate).id == "alice"


# -- refused by the CA ----------------------------------------------------------------------


def test_expired_certificate_is_refused(auth, ca):
    issued, _ = ca.generate_for("alice", days=30)
    # Valid up to its last second, refused one second after.
    assert auth.authenticate_certificate(issued.cert_pem, at(ca, issued.not_after)).id == "alice"
    error = refusal(auth, issued.cert_pem, at(ca, issued.not_after + timedelta(seconds=1)))
    assert_plain_refusal(error)


def test_certificate_issued_long_ago_is_expired_now(auth, ca):
    issued, _ = ca.generate_for("alice", days=1, now=datetime.now(UTC) - timedelta(days=30))
    assert_plain_refusal(refusal(auth, issued.cert_pem, ca.verify_client_certificate))


def test_not_yet_valid_certificate_is_refused(auth, ca):
    issued, _ = ca.generate_for("alice", now=datetime.now(UTC) + timedelta(days=10))
    assert_plain_refusal(refusal(auth, issued.cert_pem, ca.verify_client_certificate))
    # ... and accepted once its time comes.
    later = at(ca, issued.not_before + timedelta(seconds=1))
    assert auth.authenticate_certificate(issued.cert_pem, later).id == "alice"


def test_certificate_revoked_by_serial_is_refused_and_only_that_one(auth, ca):
    revoked, _ = ca.generate_for("alice")
    kept, _ = ca.generate_for("alice")
    ca.revoke(revoked.serial)
    assert_plain_refusal(refusal(auth, revoked.cert_pem, ca.verify_client_certificate))
    assert auth.authenticate_certificate(kept.cert_pem, ca.verify_client_certificate).id == "alice"


def test_certificates_revoked_with_revoke_client_are_all_refused(auth, ca):
    first, _ = ca.generate_for("alice")
    second, _ = ca.generate_for("alice")
    other, _ = ca.generate_for("lamp-agent")
    assert {i.serial for i in ca.revoke_client("alice")} == {first.serial, second.serial}
    for issued in (first, second):
        assert_plain_refusal(refusal(auth, issued.cert_pem, ca.verify_client_certificate))
    # Another client's certificate is not touched.
    assert auth.authenticate_certificate(other.cert_pem, ca.verify_client_certificate).id == (
        "lamp-agent"
    )


def test_certificate_from_another_ca_is_refused(auth, ca, tmp_path, store):
    other = CertificateAuthority.load_or_create(tmp_path / "other-home", store.bucket("other"))
    issued, _ = other.generate_for("alice")  # alice exists here, but not this CA's cert
    assert other.verify_client_certificate(issued.cert_pem) == "alice"
    assert_plain_refusal(refusal(auth, issued.cert_pem, ca.verify_client_certificate))


def test_foreign_certificate_naming_an_existing_client_under_our_ca_name_is_refused(
    auth, ca, tmp_path, store
):
    impostor = impostor_ca(ca, tmp_path, store)
    issued, _ = impostor.generate_for("alice")
    certificate = x509.load_pem_x509_certificate(issued.cert_pem)
    assert certificate.issuer == ca.certificate.subject  # looks like ours by name
    assert_plain_refusal(refusal(auth, issued.cert_pem, ca.verify_client_certificate))


@pytest.mark.parametrize("garbage", [b"not a certificate", b"", "a str", None])
def test_garbage_is_refused(auth, ca, garbage):
    assert_plain_refusal(refusal(auth, garbage, ca.verify_client_certificate))


def test_the_ca_and_server_certificates_do_not_log_in(auth, ca):
    server = ca.ensure_server_certificate([])
    for pem in (ca.ca_cert_pem, server.cert_path.read_bytes()):
        assert_plain_refusal(refusal(auth, pem, ca.verify_client_certificate))


# -- valid certificate, but the account says no ------------------------------------------


def test_certificate_of_a_client_that_does_not_exist_is_refused(auth, ca):
    # The CA issues for any id; the account check is what refuses it.
    issued, _ = ca.generate_for("ghost")
    assert ca.verify_client_certificate(issued.cert_pem) == "ghost"
    assert_plain_refusal(refusal(auth, issued.cert_pem, ca.verify_client_certificate))


def test_certificate_of_a_removed_client_is_refused(auth, ca):
    issued, _ = ca.generate_for("alice")
    auth.remove_client("alice")
    assert ca.verify_client_certificate(issued.cert_pem) == "alice"  # the CA alone says yes
    assert_plain_refusal(refusal(auth, issued.cert_pem, ca.verify_client_certificate))


def test_certificate_of_a_disabled_client_is_refused_until_enabled_again(auth, ca):
    issued, _ = ca.generate_for("alice")
    auth.update_client("alice", enabled=False)
    assert_plain_refusal(refusal(auth, issued.cert_pem, ca.verify_client_certificate))
    # Disabling is not revoking: the certificate works again once the client is enabled.
    auth.update_client("alice", enabled=True)
    assert auth.authenticate_certificate(issued.cert_pem, ca.verify_client_certificate).id == (
        "alice"
    )


def test_removed_then_re_added_client_does_not_inherit_the_old_certificate(auth, ca):
    old, _ = ca.generate_for("alice")
    auth.remove_client("alice")
    ca.revoke_client("alice")
    auth.add_client("alice", "consumer", "admin")  # a new client, same id, more power

    assert_plain_refusal(refusal(auth, old.cert_pem, ca.verify_client_certificate))
    # The new client's own certificate works, with the new role.
    new, _ = ca.generate_for("alice")
    client = auth.authenticate_certificate(new.cert_pem, ca.verify_client_certificate)
    assert (client.id, client.role) == ("alice", "admin")
    # ... and the old one still does not.
    assert_plain_refusal(refusal(auth, old.cert_pem, ca.verify_client_certificate))


# -- all refusals look the same -------------------------------------------------------------


def test_every_refusal_is_the_same_and_only_the_log_says_why(auth, ca, tmp_path, store, caplog):
    now = datetime.now(UTC)
    other = CertificateAuthority.load_or_create(tmp_path / "other-home", store.bucket("other"))
    auth.add_client("bob", "consumer", "viewer")
    auth.add_client("carol", "consumer", "viewer")
    expired, _ = ca.generate_for("alice", days=1, now=now - timedelta(days=30))
    future, _ = ca.generate_for("alice", now=now + timedelta(days=30))
    revoked, _ = ca.generate_for("alice")
    ca.revoke(revoked.serial)
    foreign, _ = other.generate_for("alice")
    impostor, _ = impostor_ca(ca, tmp_path, store).generate_for("alice")
    nobody, _ = ca.generate_for("ghost")
    removed, _ = ca.generate_for("bob")
    auth.remove_client("bob")
    disabled, _ = ca.generate_for("carol")
    auth.update_client("carol", enabled=False)

    cases = {
        "expired": expired.cert_pem,
        "not yet valid": future.cert_pem,
        "revoked": revoked.cert_pem,
        "signed by another CA": foreign.cert_pem,
        "signature does not verify": impostor.cert_pem,
        "not a client certificate": ca.ca_cert_pem,
        "not an X.509 certificate": b"junk",
        "unknown or disabled client (ghost)": nobody.cert_pem,
        "unknown or disabled client (removed)": removed.cert_pem,
        "unknown or disabled client (disabled)": disabled.cert_pem,
    }
    seen = set()
    for reason, pem in cases.items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="wothub.auth"):
            error = refusal(auth, pem, ca.verify_client_certificate)
        assert_plain_refusal(error)
        seen.add((type(error), error.status, error.title, error.detail, repr(error.extensions)))
        # The reason goes to the log, for the operator, never to the client.
        logged = " ".join(record.getMessage() for record in caplog.records)
        assert reason.split(" (")[0] in logged, (reason, logged)
    assert len(seen) == 1
