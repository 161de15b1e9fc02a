"""Logging in over NATS follows the one credential policy (docs/auth.md): a token
(``auth_token`` or a hub token in ``pass``), else ``user`` + ``pass``, else the client
certificate (on the mutual-TLS WebSocket listener); the first present decides alone,
and a ``user`` beside a token or certificate must be its client. nats-py through the
managed nats-server and the hub's auth callout."""

from __future__ import annotations

import ssl

import nats
import pytest

from auth.credentials import Credentials
from bindings.nats.callout import login_credentials
from clients.nats import NatsConsumer

from .conftest import PASSWORD

AUTHN = "urn:wothub:authn"  # every client may read its TD

pytestmark = pytest.mark.timeout(60)


def cert_agent_tls(nats_hub) -> ssl.SSLContext:
    """A TLS context carrying cert-agent's hub-issued client certificate."""
    hub = nats_hub.hub
    nats_hub.add("cert-agent", "agent", "agent")
    issued, key = hub.ca.generate_for("cert-agent")
    home = hub.config.home
    (home / "cert-agent.pem").write_bytes(issued.cert_pem)
    (home / "cert-agent.key").write_bytes(key)
    tls = ssl.create_default_context(cadata=nats_hub.ca_pem.decode())
    tls.load_cert_chain(home / "cert-agent.pem", home / "cert-agent.key")
    return tls


async def test_the_password_decides_before_the_certificate(nats_hub):
    tls = cert_agent_tls(nats_hub)
    nats_hub.add("vera")  # a viewer
    # vera's password beside cert-agent's certificate: the connection is vera's, so
    # vera's request subject and inbox are allowed (cert-agent's would not be).
    async with await NatsConsumer.connect(
        nats_hub.ws_url, "vera", password=PASSWORD, tls=tls, max_reconnect_attempts=0
    ) as consumer:
        assert (await consumer.read_thing(AUTHN))["id"] == AUTHN


async def test_a_bad_password_or_token_is_not_rescued_and_names_must_agree(nats_hub):
    tls = cert_agent_tls(nats_hub)
    nats_hub.add("vera")
    token = nats_hub.hub.auth.new_token("vera")["token"]
    for presented in (
        {"user": "cert-agent", "password": "wrong password"},  # the certificate is right
        {"token": token[:-4] + "AAAA"},  # a forged token
        {"user": "cert-agent", "password": token},  # vera's token under another name
    ):
        with pytest.raises(nats.errors.Error, match="'Authorization Violation'"):
            await nats.connect(
                nats_hub.ws_url,
                tls=tls,
                allow_reconnect=False,
                connect_timeout=3,
                max_reconnect_attempts=0,
                **presented,
            )
    # A barrier: the certificate alone still logs in.
    nc = await nats.connect(nats_hub.ws_url, tls=tls, allow_reconnect=False, connect_timeout=3)
    await nc.close()


def test_the_callout_hands_over_what_the_client_presented():
    certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert login_credentials(
        {
            "connect_opts": {"user": "vera", "pass": "secret-1", "auth_token": "t"},
            "client_tls": {"verified_chains": [[certificate]]},
        }
    ) == Credentials(certificate.encode(), "t", "vera", "secret-1")
    # nats-server fills auth_token and pass from an MQTT client's one password: it is a
    # password (or a token, if it looks like one), not two credentials.
    assert login_credentials(
        {"connect_opts": {"user": "vera", "pass": "secret-1", "auth_token": "secret-1"}}
    ) == Credentials(None, None, "vera", "secret-1")
    # Absent, empty and non-string fields are nothing.
    assert login_credentials({"connect_opts": {"user": "", "pass": 7}}) == Credentials()
    assert login_credentials({}) == Credentials()
