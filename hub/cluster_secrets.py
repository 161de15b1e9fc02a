"""The secrets every node of a cluster shares (docs/cluster.md): the CA, the NATS keys
and the token signing key, as files under the home. ``export_secrets`` reads them from
the first node's home; ``install_secrets`` writes them into a joining node's home before
its first start, so that its CA, NATS accounts and tokens are the cluster's.

A home that already has secrets of its own keeps them: installing different ones is
refused before anything is written (a node cannot silently change CA).
``make_secrets`` makes them in a first home as its first start would, for a cluster on
a NATS cluster that someone else runs (``wothub cluster nats-config``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.keys import write_file

# Path under the home -> the mode of the file.
SECRET_FILES = {
    "certs/ca.pem": 0o644,
    "certs/ca.key": 0o600,
    "nats/keys.json": 0o600,
    "keys/token-signing.key": 0o600,
}


class ClusterSecretsError(Exception):
    """The secrets cannot be read or installed; the message says why."""


def make_secrets(home: Path) -> list[str]:
    """The secrets that ``home`` lacks, made as a hub's first start makes them; the
    paths under the home that were made."""
    from auth.tokens import TokenSigner  # here: joining a node needs none of them
    from bindings.nats.server import NatsKeys
    from bucketstore.memory import MemoryStore
    from certs import CertificateAuthority

    missing = [name for name in SECRET_FILES if not (Path(home) / name).is_file()]
    # The records of issued certificates are in the cluster's store, none here.
    CertificateAuthority.load_or_create(home, MemoryStore().bucket("certs"))
    NatsKeys.load_or_create(Path(home) / "nats")
    TokenSigner.load_or_create(home)
    return missing


def export_secrets(home: Path) -> dict[str, str]:
    """The shared secrets of ``home``: path under the home -> content, base64."""
    bundle = {}
    for name in SECRET_FILES:
        path = Path(home) / name
        if not path.is_file():
            raise ClusterSecretsError(
                f"{home} has no {name}: start the first node once to create the secrets"
            )
        bundle[name] = base64.b64encode(path.read_bytes()).decode()
    return bundle


def install_secrets(home: Path, bundle: object) -> list[str]:
    """Write ``bundle`` (from ``export_secrets``) into ``home``; returns the files
    written (those already there with the same content are kept). Checked whole before
    the first write: a bundle that names other files, is not base64, or differs from a
    secret the home has is refused, and nothing is written."""
    if not isinstance(bundle, dict) or set(bundle) != set(SECRET_FILES):
        raise ClusterSecretsError(
            f"a secrets bundle has exactly these files: {sorted(SECRET_FILES)}"
        )
    contents = {}
    for name, encoded in bundle.items():
        try:
            contents[name] = base64.b64decode(str(encoded), validate=True)
        except (binascii.Error, ValueError):
            raise ClusterSecretsError(f"{name} in the bundle is not base64") from None
    home = Path(home)
    for name, data in contents.items():
        path = home / name
        if path.exists() and path.read_bytes() != data:
            raise ClusterSecretsError(
                f"{path} exists and is not the cluster's: a node joins with a fresh home "
                "(or one that already has the cluster's secrets)"
            )
    written = []
    for name, data in contents.items():
        path = home / name
        if path.exists():
            continue
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file(path, data, SECRET_FILES[name])
        written.append(name)
    return written


def ca_fingerprint(ca_pem: bytes) -> str:
    """``sha256:<hex>`` of the CA certificate (DER): what a joining node is given to
    check that it talks to the cluster before it sends its join token."""
    der = x509.load_pem_x509_certificate(ca_pem).public_bytes(serialization.Encoding.DER)
    return "sha256:" + hashlib.sha256(der).hexdigest()
