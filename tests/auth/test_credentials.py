"""The one credential policy (auth/credentials.py, ``AuthService.authenticate``): a token,
else a password, else the client certificate; the first present decides alone, and a
client id named beside a token or certificate must be its client. Real accounts,
tokens, argon2 (cheap cost) and a real CA; every binding calls exactly this."""

import pytest

from auth.credentials import CERTIFICATE, PASSWORD, TOKEN, Credentials, looks_like_token
from auth.errors import AuthenticationFailed, TooManyAttempts
from vocabulary.problems import BadRequest

REFUSED = "invalid credentials"


@pytest.fixture
def refusals(auth):
    """How many credentials auth refused (what the hub's metrics count)."""
    counted = []
    auth.on_refused = lambda: counted.append(1)
    return counted


@pytest.fixture
def certs(ca):
    """Client certificates (PEM) of alice and lamp-agent, issued by the hub CA."""
    return {
        "alice": ca.generate_for("alice")[0].cert_pem,
        "lamp-agent": ca.generate_for("lamp-agent")[0].cert_pem,
    }


async def login(auth, ca, source=None, **presented):
    return await auth.authenticate(Credentials(**presented), source, ca.verify_client_certificate)


async def refused(auth, ca, source=None, **presented) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as caught:
        await login(auth, ca, source, **presented)
    return caught.value


def token_of(auth, client_id: str) -> str:
    return auth.new_token(client_id)["token"]


# -- which credential decides --------------------------------------------------------------


@pytest.mark.parametrize(
    ("presented", "method"),
    [
        ({}, None),
        ({"client_id": "alice"}, None),  # a name alone proves nothing
        ({"certificate": b"pem"}, CERTIFICATE),
        ({"client_id": "alice", "password": "secret-1"}, PASSWORD),
        ({"token": "anything"}, TOKEN),
        ({"password": "eyJa.b.c"}, TOKEN),  # a hub token in the password field
        ({"password": "my.pass.word"}, PASSWORD),  # dots alone do not make a token
        ({"token": "t", "password": "secret-1", "certificate": b"pem"}, TOKEN),
        ({"client_id": "alice", "password": "secret-1", "certificate": b"pem"}, PASSWORD),
        ({"token": "", "password": "", "certificate": b"pem"}, CERTIFICATE),  # empty: absent
    ],
)
def test_the_precedence(presented, method):
    assert Credentials(**presented).method == method


def test_what_looks_like_a_token():
    assert looks_like_token("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln")
    for other in ("eyJ.only-one-dot", "abc.def.ghi", "", None, b"eyJa.b.c"):
        assert not looks_like_token(other)


# -- one credential -------------------------------------------------------------------------


async def test_each_credential_alone(auth, ca, certs):
    client = await login(auth, ca, certificate=certs["alice"])
    assert (client.id, client.role, client.session_id) == ("alice", "operator", None)
    token = token_of(auth, "lamp-agent")
    client = await login(auth, ca, token=token)
    assert (client.id, client.role) == ("lamp-agent", "agent") and client.session_id
    client = await login(auth, ca, client_id="alice", password="alice-password")
    assert (client.id, client.role) == ("alice", "operator")
    # A hub token where MQTT and NATS clients put it: the password field.
    assert (await login(auth, ca, password=token)).id == "lamp-agent"
    assert (await login(auth, ca, client_id="lamp-agent", password=token)).id == "lamp-agent"


async def test_nothing_presented_says_what_to_send_and_counts_no_refusal(auth, ca, refusals):
    for presented in ({}, {"client_id": "alice"}, {"token": "", "password": ""}):
        error = await refused(auth, ca, **presented)
        assert "no credentials" in error.detail
    assert refusals == []


async def test_a_password_needs_its_client_id(auth, ca, refusals):
    error = await refused(auth, ca, password="alice-password")
    assert error.detail == REFUSED
    assert refusals == [1]


async def test_a_certificate_is_refused_where_nobody_can_check_it(auth, certs):
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(Credentials(certificate=certs["alice"]))


# -- two credentials: the first decides alone ------------------------------------------------


async def test_a_token_beside_another_clients_certificate_decides(auth, ca, certs):
    client = await login(auth, ca, token=token_of(auth, "alice"), certificate=certs["lamp-agent"])
    assert client.id == "alice"
    client = await login(
        auth, ca, password=token_of(auth, "alice"), certificate=certs["lamp-agent"]
    )
    assert client.id == "alice"


async def test_a_password_beside_another_clients_certificate_decides(auth, ca, certs):
    client = await login(
        auth, ca, client_id="alice", password="alice-password", certificate=certs["lamp-agent"]
    )
    assert client.id == "alice"


async def test_a_bad_token_is_not_rescued_by_a_good_certificate(auth, ca, certs, refusals):
    for bad in ("not-a-token", token_of(auth, "alice") + "x"):
        error = await refused(auth, ca, token=bad, certificate=certs["alice"])
        assert error.detail == REFUSED
    ended = token_of(auth, "alice")
    auth.logout(ended)
    await refused(auth, ca, token=ended, certificate=certs["alice"])
    assert len(refusals) == 3


async def test_a_wrong_password_is_not_rescued_by_a_good_certificate(auth, ca, certs):
    await refused(
        auth, ca, client_id="alice", password="wrong-password", certificate=certs["alice"]
    )


async def test_a_bad_token_in_the_password_field_is_not_tried_as_a_password(auth, ca):
    checks = auth.hash_pool.checks
    forged = token_of(auth, "alice")[:-4] + "AAAA"
    await refused(auth, ca, client_id="alice", password=forged)
    assert auth.hash_pool.checks == checks  # no argon2: it was checked as a token only


async def test_a_token_decides_before_a_password_which_is_not_checked(auth, ca):
    checks = auth.hash_pool.checks
    token = token_of(auth, "alice")
    client = await login(auth, ca, token=token, client_id="alice", password="wrong-password")
    assert client.id == "alice"
    assert auth.hash_pool.checks == checks


async def test_the_certificate_is_not_looked_at_when_a_token_decides(auth, ca, certs):
    ca.revoke_client("alice")
    await refused(auth, ca, certificate=certs["alice"])
    client = await login(auth, ca, token=token_of(auth, "lamp-agent"), certificate=certs["alice"])
    assert client.id == "lamp-agent"


# -- the named client ------------------------------------------------------------------------


async def test_a_named_client_must_be_the_tokens(auth, ca, refusals):
    token = token_of(auth, "alice")
    assert (await login(auth, ca, client_id="alice", token=token)).id == "alice"
    for presented in ({"token": token}, {"password": token}):
        error = await refused(auth, ca, client_id="lamp-agent", **presented)
        assert error.detail == REFUSED  # and nothing says whose the token is
    assert len(refusals) == 2


async def test_a_named_client_must_be_the_certificates(auth, ca, certs):
    assert (await login(auth, ca, client_id="alice", certificate=certs["alice"])).id == "alice"
    await refused(auth, ca, client_id="lamp-agent", certificate=certs["alice"])
    await refused(auth, ca, client_id="nobody", certificate=certs["alice"])


# -- the throttle and the password checks stay as they were ----------------------------------


async def test_a_throttled_address_still_gets_in_with_a_token_or_certificate(auth, ca, certs):
    source = "10.0.0.66"
    for _ in range(auth.throttle.config.source_free):
        await refused(auth, ca, source, client_id="nobody", password="guess-guess")
    with pytest.raises(TooManyAttempts):
        await login(auth, ca, source, client_id="alice", password="alice-password")
    assert (await login(auth, ca, source, token=token_of(auth, "alice"))).id == "alice"
    assert (await login(auth, ca, source, certificate=certs["alice"])).id == "alice"
    # Another address is not held up.
    assert (
        await login(auth, ca, "10.0.0.1", client_id="alice", password="alice-password")
    ).id == "alice"


async def test_a_recent_password_is_remembered_through_the_policy(auth, ca):
    await login(auth, ca, client_id="lamp-agent", password="agent-password")
    checks = auth.hash_pool.checks
    await login(auth, ca, client_id="lamp-agent", password="agent-password")
    assert auth.hash_pool.checks == checks


def test_a_password_that_looks_like_a_token_cannot_be_set(auth):
    with pytest.raises(BadRequest, match="look like a token"):
        auth.add_client("tricky", "consumer", "viewer", password="eyJabc.defgh.ijk")
    with pytest.raises(BadRequest, match="look like a token"):
        auth.update_client("alice", password="eyJabc.defgh.ijk")
