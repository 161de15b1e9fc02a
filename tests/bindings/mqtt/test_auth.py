"""Logging in over MQTT follows the one credential policy (docs/auth.md): a token (in
the password field), else username + password, else the TLS client certificate; the
first present decides alone, and a username beside a token or certificate must be its
client. paho-mqtt over TLS, the real hub; the MQTT listener requires certificates
(``client_certificate = "require"``: nats-server cannot ask for one only if given)."""

from __future__ import annotations

from bindings.mqtt import topics

BAD_CREDENTIALS = 135  # CONNACK 5 "not authorized" (nats-server), as paho reports it
REFUSED_SUBSCRIPTION = 128  # SUBACK failure


async def test_the_password_decides_before_the_certificate(mqtt_cert_hub):
    mqtt_cert_hub.add_agent("cert-agent")
    certfile, keyfile = mqtt_cert_hub.certificate("cert-agent")
    token = mqtt_cert_hub.add_client("vera", "consumer", "viewer")
    own_requests = topics.agent_requests("cert-agent")  # only cert-agent may subscribe

    # The certificate alone: cert-agent.
    agent = mqtt_cert_hub.paho("cert-agent/1", username=None, password=None, certfile=certfile,
                          keyfile=keyfile)  # fmt: skip
    assert await agent.connect() == 0
    assert await agent.subscribe(own_requests) == 1

    # vera's password beside cert-agent's certificate: vera.
    viewer = mqtt_cert_hub.paho("vera/2", username="vera", certfile=certfile, keyfile=keyfile)
    assert await viewer.connect() == 0
    assert await viewer.subscribe(own_requests) == REFUSED_SUBSCRIPTION

    # vera's token as the password, under her name (nats-server refuses an empty
    # username with CONNACK 4: docs/mqtt.md): vera again.
    by_token = mqtt_cert_hub.paho("vera/3", username="vera", password=token, certfile=certfile,
                             keyfile=keyfile)  # fmt: skip
    assert await by_token.connect() == 0
    assert await by_token.subscribe(own_requests) == REFUSED_SUBSCRIPTION


async def test_a_bad_password_or_token_is_not_rescued_and_names_must_agree(mqtt_cert_hub):
    mqtt_cert_hub.add_agent("cert-agent")
    certfile, keyfile = mqtt_cert_hub.certificate("cert-agent")
    token = mqtt_cert_hub.add_client("vera", "consumer", "viewer")
    for username, password in (
        ("cert-agent", "wrong password"),  # the certificate is right, the password not
        ("vera", token[:-4] + "AAAA"),  # a forged token
        ("cert-agent", token),  # vera's token under cert-agent's name
        ("vera", None),  # a name that is not the certificate's
    ):
        client = mqtt_cert_hub.paho(f"{username}/probe", username=username, password=password,
                               certfile=certfile, keyfile=keyfile)  # fmt: skip
        assert await client.connect() == BAD_CREDENTIALS, (username, password)
    # A barrier: the certificate alone still logs in.
    agent = mqtt_cert_hub.paho("cert-agent/ok", username=None, password=None, certfile=certfile,
                          keyfile=keyfile)  # fmt: skip
    assert await agent.connect() == 0
