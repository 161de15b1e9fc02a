"""Key pairs and the PEM files that hold them.

Private keys are PKCS#8 PEM without a passphrase (the hub must start unattended); they
are written mode 0600 from the first byte on, and every file is replaced atomically so a
crash never leaves half a key behind.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

from .errors import CertificateError

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
DIRECTORY_MODE = 0o700
MIN_RSA_BITS = 2048
CLIENT_CURVES = (ec.SECP256R1, ec.SECP384R1)
SIGNING_KEYS = (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey)


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key: the CA's, the server's and ``generate_for``'s."""
    return ec.generate_private_key(ec.SECP256R1())


def private_pem(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_der(key: CertificatePublicKeyTypes) -> bytes:
    """SubjectPublicKeyInfo DER: two public keys are the same key when these are equal."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def describe(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    return type(key).__name__.removeprefix("_")


def check_client_key(key: object) -> CertificatePublicKeyTypes:
    """Accept the key types a client certificate may carry: EC P-256 or P-384, Ed25519,
    RSA of 2048 bits or more."""
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, CLIENT_CURVES):
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
        return key
    raise CertificateError(
        f"unsupported key type {describe(key)}: use EC P-256 or P-384, Ed25519, "
        f"or RSA of at least {MIN_RSA_BITS} bits"
    )


def make_private_directory(path: Path) -> None:
    """Create ``path`` (and its parents) and make it mode 0700, even if it existed."""
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIRECTORY_MODE)


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically with ``data``, the new file having exactly ``mode``."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), mode)  # exactly ``mode``, whatever the umask
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_private_key(path: Path) -> CertificateIssuerPrivateKeyTypes:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CertificateError(f"cannot read the private key {path}: {exc}") from None
    if not isinstance(key, SIGNING_KEYS):
        raise CertificateError(f"{path} holds a {describe(key)} key, not a signing key")
    return key


def read_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CertificateError(f"cannot read the certificate {path}: {exc}") from None


def signature_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    """The hash to sign with: SHA-256, or none for Ed25519 (it hashes internally)."""
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def key_matches(key: CertificateIssuerPrivateKeyTypes, certificate: x509.Certificate) -> bool:
    return public_der(key.public_key()) == public_der(certificate.public_key())
