"""The secrets a joining node installs (hub/cluster_secrets.py): with them its CA, NATS
keys and token key are the first node's; a home with secrets of its own is left alone."""

import stat

import pytest

from auth.tokens import TokenSigner
from bindings.nats.server import NatsKeys
from bucketstore import open_store
from certs import CertificateAuthority
from hub.cluster_secrets import (
    SECRET_FILES,
    ClusterSecretsError,
    ca_fingerprint,
    export_secrets,
    install_secrets,
)


def first_node(home, tmp_path):
    with open_store(tmp_path / "first-store") as store:
        ca = CertificateAuthority.load_or_create(home, store.bucket("certs"))
    return ca, NatsKeys.load_or_create(home / "nats"), TokenSigner.load_or_create(home)


def test_a_joining_home_gets_the_first_nodes_ca_nats_keys_and_token_key(tmp_path):
    ca, keys, signer = first_node(tmp_path / "first", tmp_path)
    joining = tmp_path / "joining"
    assert sorted(install_secrets(joining, export_secrets(tmp_path / "first"))) == sorted(
        SECRET_FILES
    )
    for name, mode in SECRET_FILES.items():
        assert stat.S_IMODE((joining / name).stat().st_mode) == mode
    with open_store(tmp_path / "joining-store") as store:
        joined = CertificateAuthority.load_or_create(joining, store.bucket("certs"))
    assert joined.ca_cert_pem == ca.ca_cert_pem
    assert ca_fingerprint(joined.ca_cert_pem) == ca_fingerprint(ca.ca_cert_pem)
    joined_keys = NatsKeys.load_or_create(joining / "nats")
    assert joined_keys.auth_config() == keys.auth_config()  # the same accounts and callout
    assert joined_keys.hub_user.seed == keys.hub_user.seed
    token = signer.issue("alice", "viewer", "s1", 60)
    assert TokenSigner.load_or_create(joining).verify(token).client_id == "alice"
    # Installing again changes nothing.
    assert install_secrets(joining, export_secrets(tmp_path / "first")) == []


def test_a_home_with_a_ca_of_its_own_is_refused_and_left_as_it_was(tmp_path):
    first_node(tmp_path / "first", tmp_path)
    other = tmp_path / "other"
    with open_store(tmp_path / "other-store") as store:
        CertificateAuthority.load_or_create(other, store.bucket("certs"))
    before = {path: path.read_bytes() for path in other.rglob("*") if path.is_file()}
    with pytest.raises(ClusterSecretsError, match="is not the cluster's"):
        install_secrets(other, export_secrets(tmp_path / "first"))
    assert {path: path.read_bytes() for path in other.rglob("*") if path.is_file()} == before


@pytest.mark.parametrize(
    "change",
    [
        lambda bundle: bundle.update({"../outside": "eA=="}),
        lambda bundle: bundle.pop("certs/ca.key"),
        lambda bundle: bundle.update({"certs/ca.key": "not base64!"}),
    ],
    ids=["a path outside the list", "a file missing", "not base64"],
)
def test_a_bundle_that_is_not_the_secrets_is_refused_and_nothing_written(tmp_path, change):
    first_node(tmp_path / "first", tmp_path)
    bundle = export_secrets(tmp_path / "first")
    change(bundle)
    with pytest.raises(ClusterSecretsError):
        install_secrets(tmp_path / "joining", bundle)
    assert not (tmp_path / "joining").exists()


def test_exporting_from_a_home_without_secrets_says_what_is_missing(tmp_path):
    with pytest.raises(ClusterSecretsError, match=r"has no certs/ca\.pem"):
        export_secrets(tmp_path / "empty")
