"""A CSR made by the openssl command line, as a device owner would make one."""

import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.requirements import require_command


@pytest.fixture(autouse=True)
def _needs_openssl():
    require_command("openssl", package="openssl")


def public_der(key):
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_issue_from_an_openssl_csr(ca, tmp_path):
    key_path, csr_path = tmp_path / "device.key", tmp_path / "device.csr"
    subprocess.run(
        [
            "openssl", "req", "-new", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", "/CN=whatever-the-device-says",
            "-keyout", str(key_path), "-out", str(csr_path),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    issued = ca.issue_from_csr(csr_path.read_bytes(), "thermostat-7")
    certificate = x509.load_pem_x509_certificate(issued.cert_pem)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert public_der(certificate.public_key()) == public_der(key.public_key())
    assert ca.verify_client_certificate(issued.cert_pem) == "thermostat-7"

    # openssl itself agrees the chain is good for TLS client authentication.
    cert_path = tmp_path / "device.pem"
    cert_path.write_bytes(issued.cert_pem)
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca.ca_cert_path), "-purpose", "sslclient",
         str(cert_path)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip().endswith("OK")
