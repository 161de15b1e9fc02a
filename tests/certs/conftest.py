"""A real CA in a temp home, with its record in a real LevelDB bucket."""

from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from bucketstore import open_store
from certs import CertificateAuthority

# A fixed "now" for tests that move in time; real time for the rest.
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def make_csr(common_name="someone-else", key=None) -> tuple[bytes, object]:
    """A PEM CSR made by cryptography, and its private key."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    algorithm = None if isinstance(key, Ed25519PrivateKey) else hashes.SHA256()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, algorithm)
    )
    return csr.public_bytes(serialization.Encoding.PEM), key


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "store") as store:
        yield store


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def ca(home, store):
    return CertificateAuthority.load_or_create(home, store.bucket("certs"))
