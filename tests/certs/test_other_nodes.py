"""Two nodes' CAs (one CA, a store each on the same JetStream servers): a certificate
issued on one node logs in on the other, and one revoked on one node is refused by the
other, whose hub is told so that it closes what logged in with it (issue 22)."""

import asyncio
import shutil

import pytest

from certs import CertificateAuthority, CertificateError
from tests.waiting import until


async def test_a_certificate_revoked_on_one_node_is_refused_and_ended_on_the_other(
    tmp_path, jetstream_store_factory
):
    one_store, two_store = jetstream_store_factory(), jetstream_store_factory()
    one = CertificateAuthority.load_or_create(tmp_path / "one", one_store.bucket("certs"))
    shutil.copytree(tmp_path / "one" / "certs", tmp_path / "two" / "certs")
    two = CertificateAuthority.load_or_create(tmp_path / "two", two_store.bucket("certs"))
    ended: list[int] = []
    two.on_revoked = lambda issued: ended.append(issued.serial)
    two.follow_other_nodes(asyncio.get_running_loop())

    issued, _key = one.generate_for("alice")
    await until(lambda: two.list_issued("alice"), timeout=5)
    assert two.verify_client_certificate(issued.cert_pem) == "alice"

    one.revoke(issued.serial)
    await until(lambda: ended, timeout=1)
    assert ended == [issued.serial]
    with pytest.raises(CertificateError, match="revoked"):
        two.verify_client_certificate(issued.cert_pem)
