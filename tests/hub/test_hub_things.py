"""The hub's own Things (authn, clients, certs) through the real router.

Every test uses the real ``hub.runtime.Hub`` of ``running`` (LevelDB in a temp home, real
AuthService with its default argon2id cost, real CA, real RoleAuthorizer), connects
clients as a binding would and sends ``invokeaction`` requests with ``router.handle``.
Clients are added without passwords unless a test needs one, as hashing is the slow part.
"""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from auth.errors import AuthenticationFailed
from certs import CertificateError
from tests.support.messages import request
from tests.support.tds import LAMP, lamp_td
from vocabulary.envelope import ABSENT
from vocabulary.identity import Client
from vocabulary.things import AUTHN_THING, CERTS_THING, CLIENTS_THING

ADMIN = "root"


@pytest.fixture
def runtime_hub(running):
    """The ``hub.runtime.Hub`` of ``running``, with an administrator account (no password)."""
    running.hub.auth.add_client(ADMIN, "consumer", "admin")
    return running.hub


@pytest.fixture
def admin(runtime_hub):
    return runtime_hub.router.connect(Client(ADMIN, "admin"), "test")


def connect(runtime_hub, client_id, role, session_id=None):
    return runtime_hub.router.connect(Client(client_id, role, session_id), "test")


def invoke(runtime_hub, connection, thing_id, action, data=ABSENT):
    fields = {} if data is ABSENT else {"input": data}
    response = runtime_hub.router.handle(
        connection, request("invokeaction", thing_id, action, **fields)
    )
    assert response is not None
    assert response.message_type == "response"
    assert (response.operation, response.thing_id, response.name) == (
        "invokeaction",
        thing_id,
        action,
    )
    return response


def ok(response):
    """The output of a completed service action."""
    assert response.error is None, response.error
    assert response.status == "completed"
    return response.output


def result(response):
    """The output of any successful request (only service actions say "completed")."""
    assert response.error is None, response.error
    return response.output


def failed(response, status):
    """The problem details of a refused request, checked for shape and status."""
    assert response.status == "failed", response
    assert response.output is ABSENT
    error = response.error
    assert error["status"] == status, error
    assert error["type"] == "about:blank"
    assert isinstance(error["title"], str) and isinstance(error["detail"], str)
    return error


def make_csr(common_name, key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def public_der(key):
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def accounts(runtime_hub, connection):
    return {
        a["clientID"]: a for a in ok(invoke(runtime_hub, connection, CLIENTS_THING, "listClients"))
    }


# -- the Things are registered ---------------------------------------------------------------


async def test_service_things_are_in_the_directory_owned_by_the_hub(runtime_hub, admin):
    for thing_id in (AUTHN_THING, CLIENTS_THING, CERTS_THING):
        assert runtime_hub.twin.owner_of(thing_id) == "wothub"
        td = result(runtime_hub.router.handle(admin, request("readthing", thing_id)))
        assert td["id"] == thing_id
    td = result(runtime_hub.router.handle(admin, request("readthing", CLIENTS_THING)))
    assert set(td["actions"]) == {
        "addClient",
        "removeClient",
        "listClients",
        "setRole",
        "setPassword",
        "setEnabled",
        "newToken",
    }


# -- clients ----------------------------------------------------------------------------------


async def test_admin_adds_and_lists_clients(runtime_hub, admin):
    added = ok(
        invoke(
            runtime_hub,
            admin,
            CLIENTS_THING,
            "addClient",
            {"clientID": "vera", "kind": "consumer", "role": "viewer", "displayName": "Vera"},
        )
    )
    assert added["clientID"] == "vera"
    assert (added["kind"], added["role"], added["displayName"]) == ("consumer", "viewer", "Vera")
    assert added["enabled"] is True and added["hasPassword"] is False
    assert "password_hash" not in added and "passwordHash" not in added
    ok(
        invoke(
            runtime_hub,
            admin,
            CLIENTS_THING,
            "addClient",
            {"clientID": "lamp-agent", "kind": "agent", "role": "agent"},
        )
    )

    listed = accounts(runtime_hub, admin)
    assert set(listed) == {ADMIN, "vera", "lamp-agent"}
    assert listed["vera"] == added
    assert listed["lamp-agent"]["role"] == "agent"
    # The real account exists and is what the authorizer sees.
    assert runtime_hub.auth.accounts.get("vera").role == "viewer"


async def test_adding_an_existing_client_is_a_conflict(runtime_hub, admin):
    data = {"clientID": "vera", "kind": "consumer", "role": "viewer"}
    ok(invoke(runtime_hub, admin, CLIENTS_THING, "addClient", data))
    error = failed(invoke(runtime_hub, admin, CLIENTS_THING, "addClient", data), 409)
    assert "vera" in error["detail"]


async def test_set_role_applies_to_the_clients_next_request(runtime_hub, admin):
    """An operator demoted to viewer cannot invoke any more, on the same connection."""
    runtime_hub.auth.add_client("lamp-agent", "agent", "agent")
    runtime_hub.auth.add_client("otto", "consumer", "operator")
    agent = connect(runtime_hub, "lamp-agent", "agent")
    assert (
        result(runtime_hub.router.handle(agent, request("updatething", input=lamp_td())))["id"]
        == LAMP
    )
    otto = connect(runtime_hub, "otto", "operator")  # the role on the connection is never re-read

    queued = runtime_hub.router.handle(otto, request("invokeaction", LAMP, "toggle"))
    assert queued.error is None and queued.action_id

    changed = ok(
        invoke(runtime_hub, admin, CLIENTS_THING, "setRole", {"clientID": "otto", "role": "viewer"})
    )
    assert changed["role"] == "viewer"
    refused = runtime_hub.router.handle(otto, request("invokeaction", LAMP, "toggle"))
    error = failed(refused, 403)
    assert "viewer" in error["detail"] and error["operation"] == "invokeaction"
    # Reading is still allowed for a viewer.
    assert runtime_hub.router.handle(otto, request("readthing", LAMP)).error is None

    ok(
        invoke(
            runtime_hub, admin, CLIENTS_THING, "setRole", {"clientID": "otto", "role": "manager"}
        )
    )
    assert runtime_hub.router.handle(otto, request("invokeaction", LAMP, "toggle")).error is None


async def test_set_role_checks_the_role_against_the_kind(runtime_hub, admin):
    runtime_hub.auth.add_client("vera", "consumer", "viewer")
    error = failed(
        invoke(runtime_hub, admin, CLIENTS_THING, "setRole", {"clientID": "vera", "role": "agent"}),
        400,
    )
    assert "consumer" in error["detail"] and "'agent'" in error["detail"]
    assert runtime_hub.auth.accounts.get("vera").role == "viewer"


async def test_set_password_changes_the_login_and_ends_sessions(runtime_hub, admin):
    runtime_hub.auth.add_client("vera", "consumer", "viewer")
    old_token = runtime_hub.auth.new_token("vera")["token"]
    changed = ok(
        invoke(
            runtime_hub,
            admin,
            CLIENTS_THING,
            "setPassword",
            {"clientID": "vera", "password": "new-password-1"},
        )
    )
    assert changed["hasPassword"] is True
    assert (await runtime_hub.auth.login("vera", "new-password-1"))["clientID"] == "vera"
    with pytest.raises(AuthenticationFailed):
        runtime_hub.auth.authenticate_token(old_token)


async def test_set_password_too_short_names_the_field(runtime_hub, admin):
    runtime_hub.auth.add_client("vera", "consumer", "viewer")
    error = failed(
        invoke(
            runtime_hub,
            admin,
            CLIENTS_THING,
            "setPassword",
            {"clientID": "vera", "password": "short"},
        ),
        400,
    )
    assert [e["field"] for e in error["validationErrors"]] == ["password"]
    assert runtime_hub.auth.accounts.get("vera").password_hash is None


async def test_set_enabled_false_cuts_off_the_client_at_once(runtime_hub, admin):
    runtime_hub.auth.add_client("vera", "consumer", "viewer")
    login = runtime_hub.auth.new_token("vera")
    session_id = runtime_hub.auth.authenticate_token(login["token"]).session_id
    vera = connect(runtime_hub, "vera", "viewer", session_id)
    assert runtime_hub.router.handle(vera, request("readthing", AUTHN_THING)).error is None

    disabled = ok(
        invoke(
            runtime_hub, admin, CLIENTS_THING, "setEnabled", {"clientID": "vera", "enabled": False}
        )
    )
    assert disabled["enabled"] is False
    failed(runtime_hub.router.handle(vera, request("readthing", AUTHN_THING)), 401)
    with pytest.raises(AuthenticationFailed):
        runtime_hub.auth.authenticate_token(login["token"])

    enabled = ok(
        invoke(
            runtime_hub, admin, CLIENTS_THING, "setEnabled", {"clientID": "vera", "enabled": True}
        )
    )
    assert enabled["enabled"] is True
    # A fresh connection without a session works again; the old session stays ended.
    fresh = connect(runtime_hub, "vera", "viewer")
    assert runtime_hub.router.handle(fresh, request("readthing", AUTHN_THING)).error is None
    failed(runtime_hub.router.handle(vera, request("readthing", AUTHN_THING)), 401)


async def test_new_token_logs_the_client_in_without_a_password(runtime_hub, admin):
    runtime_hub.auth.add_client("lamp-agent", "agent", "agent")
    issued = ok(invoke(runtime_hub, admin, CLIENTS_THING, "newToken", {"clientID": "lamp-agent"}))
    assert (issued["clientID"], issued["role"]) == ("lamp-agent", "agent")
    assert issued["expires"].endswith("Z")
    client = runtime_hub.auth.authenticate_token(issued["token"])
    assert (client.id, client.role) == ("lamp-agent", "agent")
    assert client.session_id is not None


async def test_new_token_for_a_disabled_or_unknown_client_is_refused(runtime_hub, admin):
    runtime_hub.auth.add_client("vera", "consumer", "viewer")
    runtime_hub.auth.update_client("vera", enabled=False)
    refused = invoke(runtime_hub, admin, CLIENTS_THING, "newToken", {"clientID": "vera"})
    assert refused.status == "failed" and refused.output is ABSENT
    assert "disabled" in refused.error["detail"]
    error = failed(
        invoke(runtime_hub, admin, CLIENTS_THING, "newToken", {"clientID": "nobody"}), 404
    )
    assert "nobody" in error["detail"]


async def test_remove_client_ends_its_access_and_revokes_its_certificates(runtime_hub, admin):
    runtime_hub.auth.add_client("vera", "consumer", "viewer")
    first, _ = runtime_hub.ca.generate_for("vera")
    second = runtime_hub.ca.issue_from_csr(make_csr("vera")[0].encode(), "vera")
    other, _ = runtime_hub.ca.generate_for(ADMIN)
    token = runtime_hub.auth.new_token("vera")["token"]
    vera = connect(
        runtime_hub, "vera", "viewer", runtime_hub.auth.authenticate_token(token).session_id
    )

    removed = ok(invoke(runtime_hub, admin, CLIENTS_THING, "removeClient", {"clientID": "vera"}))
    assert removed["clientID"] == "vera"
    assert "vera" not in accounts(runtime_hub, admin)
    # Its connection, its token and its certificates are all refused from now on.
    failed(runtime_hub.router.handle(vera, request("readthing", AUTHN_THING)), 401)
    with pytest.raises(AuthenticationFailed):
        runtime_hub.auth.authenticate_token(token)
    for issued in (first, second):
        with pytest.raises(CertificateError, match=r"^revoked"):
            runtime_hub.ca.verify_client_certificate(issued.cert_pem)
    assert all(i.revoked for i in runtime_hub.ca.list_issued("vera"))
    assert len(runtime_hub.ca.list_issued("vera")) == 2
    # Another client's certificate is untouched.
    assert runtime_hub.ca.verify_client_certificate(other.cert_pem) == ADMIN

    # A new client with the same id does not inherit the old certificates.
    runtime_hub.auth.add_client("vera", "consumer", "admin")
    with pytest.raises(AuthenticationFailed):
        runtime_hub.auth.authenticate_certificate(
            first.cert_pem, runtime_hub.ca.verify_client_certificate
        )


async def test_removing_an_unknown_client_is_not_found(runtime_hub, admin):
    error = failed(
        invoke(runtime_hub, admin, CLIENTS_THING, "removeClient", {"clientID": "nobody"}), 404
    )
    assert "nobody" in error["detail"]


async def test_an_admin_cannot_remove_itself(runtime_hub, admin):
    error = failed(
        invoke(runtime_hub, admin, CLIENTS_THING, "removeClient", {"clientID": ADMIN}), 400
    )
    assert "cannot remove itself" in error["detail"]
    assert runtime_hub.auth.accounts.get(ADMIN) is not None
    # ... but another administrator may.
    runtime_hub.auth.add_client("second", "consumer", "admin")
    second = connect(runtime_hub, "second", "admin")
    ok(invoke(runtime_hub, second, CLIENTS_THING, "removeClient", {"clientID": ADMIN}))
    assert runtime_hub.auth.accounts.get(ADMIN) is None


# -- input validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action, data, field, words",
    [
        ("addClient", {"kind": "consumer", "role": "viewer"}, "(root)", "clientID is required"),
        ("addClient", {"clientID": "x", "kind": "consumer", "role": "boss"}, "role", '"viewer"'),
        ("addClient", {"clientID": "x", "kind": "robot", "role": "viewer"}, "kind", '"consumer"'),
        ("addClient", {"clientID": "", "kind": "consumer", "role": "viewer"}, "clientID", ""),
        ("removeClient", {}, "(root)", "clientID is required"),
        ("setRole", {"clientID": "x"}, "(root)", "role is required"),
        ("setRole", {"clientID": "x", "role": "superuser"}, "role", "superuser"),
        ("setEnabled", {"clientID": "x", "enabled": "yes"}, "enabled", "boolean"),
        ("newToken", {"clientID": 7}, "clientID", "string"),
    ],
)
async def test_bad_client_input_is_a_400_naming_the_field(
    runtime_hub, admin, action, data, field, words
):
    before = accounts(runtime_hub, admin)
    error = failed(invoke(runtime_hub, admin, CLIENTS_THING, action, data), 400)
    fields = [e["field"] for e in error["validationErrors"]]
    assert field in fields, error
    assert words in error["detail"]
    assert action in error["detail"]
    assert accounts(runtime_hub, admin) == before  # nothing changed


async def test_bad_client_id_from_the_account_rules_is_a_400(runtime_hub, admin):
    error = failed(
        invoke(
            runtime_hub,
            admin,
            CLIENTS_THING,
            "addClient",
            {"clientID": "has space", "kind": "consumer", "role": "viewer"},
        ),
        400,
    )
    assert "client id" in error["detail"]
    error = failed(
        invoke(
            runtime_hub,
            admin,
            CLIENTS_THING,
            "addClient",
            {"clientID": "wothub", "kind": "consumer", "role": "viewer"},
        ),
        400,
    )
    assert "reserved" in error["detail"]


async def test_unknown_action_of_a_service_thing_is_not_found(runtime_hub, admin):
    error = failed(invoke(runtime_hub, admin, CLIENTS_THING, "dropDatabase", {}), 404)
    assert "dropDatabase" in error["detail"]


# -- certificates ------------------------------------------------------------------------------


async def test_issue_certificate_from_a_csr(runtime_hub, admin):
    runtime_hub.auth.add_client("lamp-agent", "agent", "agent")
    csr_pem, key = make_csr("lamp-agent")
    out = ok(
        invoke(
            runtime_hub,
            admin,
            CERTS_THING,
            "issueCertificate",
            {"clientID": "lamp-agent", "csr": csr_pem, "days": 30},
        )
    )
    assert out["clientID"] == "lamp-agent" and out["revoked"] is False
    assert out["caCertificate"] == runtime_hub.ca.ca_cert_pem.decode()
    assert "privateKey" not in out

    certificate = x509.load_pem_x509_certificate(out["certificate"].encode())
    ca_certificate = x509.load_pem_x509_certificate(out["caCertificate"].encode())
    certificate.verify_directly_issued_by(ca_certificate)  # chains to the CA it returned
    assert ca_certificate == runtime_hub.ca.certificate
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "lamp-agent"
    )
    assert public_der(certificate.public_key()) == public_der(key.public_key())
    assert out["serial"] == f"{certificate.serial_number:032x}"
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime.days == 30  # 30 days plus the 5 minutes of backdating
    # It logs the client in.
    assert runtime_hub.ca.verify_client_certificate(out["certificate"].encode()) == "lamp-agent"
    client = runtime_hub.auth.authenticate_certificate(
        out["certificate"].encode(), runtime_hub.ca.verify_client_certificate
    )
    assert (client.id, client.role) == ("lamp-agent", "agent")


async def test_issue_certificate_ignores_the_csr_subject(runtime_hub, admin):
    runtime_hub.auth.add_client("vera", "consumer", "viewer")
    out = ok(
        invoke(
            runtime_hub,
            admin,
            CERTS_THING,
            "issueCertificate",
            {"clientID": "vera", "csr": make_csr(ADMIN)[0]},
        )
    )
    certificate = x509.load_pem_x509_certificate(out["certificate"].encode())
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "vera"
    assert runtime_hub.ca.verify_client_certificate(certificate) == "vera"


async def test_a_csr_with_a_bad_signature_is_a_clear_400(runtime_hub, admin):
    runtime_hub.auth.add_client("vera", "consumer", "viewer")
    csr_pem, _ = make_csr("vera-original")
    der = x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER)
    tampered = der.replace(b"vera-original", b"vera-0riginal")  # signed content altered
    assert tampered != der
    bad = x509.load_der_x509_csr(tampered).public_bytes(serialization.Encoding.PEM).decode()

    error = failed(
        invoke(
            runtime_hub, admin, CERTS_THING, "issueCertificate", {"clientID": "vera", "csr": bad}
        ),
        400,
    )
    assert "signature is invalid" in error["detail"]
    assert runtime_hub.ca.list_issued() == []


@pytest.mark.parametrize(
    "csr",
    ["not a csr", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"],
)
async def test_garbage_instead_of_a_csr_is_a_400(runtime_hub, admin, csr):
    runtime_hub.auth.add_client("vera", "consumer", "viewer")
    error = failed(
        invoke(
            runtime_hub, admin, CERTS_THING, "issueCertificate", {"clientID": "vera", "csr": csr}
        ),
        400,
    )
    assert "not a certificate signing request" in error["detail"]
    assert runtime_hub.ca.list_issued() == []


async def test_certificates_only_for_existing_clients(runtime_hub, admin):
    for action, data in [
        ("issueCertificate", {"clientID": "ghost", "csr": make_csr("ghost")[0]}),
        ("generateCertificate", {"clientID": "ghost"}),
    ]:
        error = failed(invoke(runtime_hub, admin, CERTS_THING, action, data), 404)
        assert "ghost" in error["detail"]
    assert runtime_hub.ca.list_issued() == []


async def test_generate_certificate_returns_the_private_key_once(runtime_hub, admin):
    runtime_hub.auth.add_client("vera", "consumer", "viewer")
    out = ok(invoke(runtime_hub, admin, CERTS_THING, "generateCertificate", {"clientID": "vera"}))
    key = serialization.load_pem_private_key(out["privateKey"].encode(), password=None)
    certificate = x509.load_pem_x509_certificate(out["certificate"].encode())
    assert public_der(key.public_key()) == public_der(certificate.public_key())
    certificate.verify_directly_issued_by(
        x509.load_pem_x509_certificate(out["caCertificate"].encode())
    )
    assert runtime_hub.ca.verify_client_certificate(certificate) == "vera"
    # The hub keeps no private key: the record has the certificate only.
    (record,) = runtime_hub.ca.list_issued("vera")
    assert "PRIVATE KEY" not in record.cert_pem.decode()
    listed = ok(invoke(runtime_hub, admin, CERTS_THING, "listCertificates", {"clientID": "vera"}))
    assert "privateKey" not in listed[0]


async def test_list_certificates_all_and_by_client(runtime_hub, admin):
    runtime_hub.auth.add_client("vera", "consumer", "viewer")
    runtime_hub.auth.add_client("lamp-agent", "agent", "agent")
    for client_id in ("vera", "vera", "lamp-agent"):
        ok(invoke(runtime_hub, admin, CERTS_THING, "generateCertificate", {"clientID": client_id}))

    everything = ok(invoke(runtime_hub, admin, CERTS_THING, "listCertificates", {}))
    assert sorted(c["clientID"] for c in everything) == ["lamp-agent", "vera", "vera"]
    assert {c["serial"] for c in everything} == {
        f"{i.serial:032x}" for i in runtime_hub.ca.list_issued()
    }
    veras = ok(invoke(runtime_hub, admin, CERTS_THING, "listCertificates", {"clientID": "vera"}))
    assert [c["clientID"] for c in veras] == ["vera", "vera"]
    for entry in veras:
        assert set(entry) >= {"serial", "notBefore", "notAfter", "revoked", "certificate"}
        assert entry["certificate"].startswith("-----BEGIN CERTIFICATE-----")


async def test_revoke_certificate_by_hex_serial(runtime_hub, admin):
    runtime_hub.auth.add_client("vera", "consumer", "viewer")
    out = ok(invoke(runtime_hub, admin, CERTS_THING, "generateCertificate", {"clientID": "vera"}))
    kept = ok(invoke(runtime_hub, admin, CERTS_THING, "generateCertificate", {"clientID": "vera"}))
    pem = out["certificate"].encode()
    assert runtime_hub.ca.verify_client_certificate(pem) == "vera"

    revoked = ok(
        invoke(runtime_hub, admin, CERTS_THING, "revokeCertificate", {"serial": out["serial"]})
    )
    assert revoked["serial"] == out["serial"]
    assert revoked["revoked"] is True and revoked["revokedAt"].endswith("Z")
    with pytest.raises(CertificateError, match=r"^revoked"):
        runtime_hub.ca.verify_client_certificate(pem)
    with pytest.raises(AuthenticationFailed):
        runtime_hub.auth.authenticate_certificate(pem, runtime_hub.ca.verify_client_certificate)
    assert runtime_hub.ca.verify_client_certificate(kept["certificate"].encode()) == "vera"
    listed = ok(invoke(runtime_hub, admin, CERTS_THING, "listCertificates", {"clientID": "vera"}))
    assert {c["serial"]: c["revoked"] for c in listed} == {
        out["serial"]: True,
        kept["serial"]: False,
    }
    # Upper-case hex names the same certificate; revoking again changes nothing.
    again = ok(
        invoke(
            runtime_hub, admin, CERTS_THING, "revokeCertificate", {"serial": out["serial"].upper()}
        )
    )
    assert again["revokedAt"] == revoked["revokedAt"]


@pytest.mark.parametrize(
    "serial, status, words",
    [("0123abcd", 400, "unknown serial"), ("not-hex", 400, "serial"), ("", 400, "serial")],
)
async def test_revoking_a_bad_or_unknown_serial_is_a_400(runtime_hub, admin, serial, status, words):
    error = failed(
        invoke(runtime_hub, admin, CERTS_THING, "revokeCertificate", {"serial": serial}), status
    )
    assert words in error["detail"]


@pytest.mark.parametrize(
    "data, field",
    [
        ({"csr": "x"}, "(root)"),
        ({"clientID": "vera"}, "(root)"),
        ({"clientID": "vera", "csr": "x", "days": 0}, "days"),
    ],
)
async def test_bad_certificate_input_names_the_field(runtime_hub, admin, data, field):
    error = failed(invoke(runtime_hub, admin, CERTS_THING, "issueCertificate", data), 400)
    assert field in [e["field"] for e in error["validationErrors"]]
    assert runtime_hub.ca.list_issued() == []


# -- who may use what ---------------------------------------------------------------------------

# (kind, role) of every account that is not an administrator.
NON_ADMINS = [
    ("consumer", "viewer"),
    ("consumer", "operator"),
    ("consumer", "manager"),
    ("agent", "agent"),
    ("service", "service"),
]


@pytest.mark.parametrize("kind, role", NON_ADMINS, ids=[role for _, role in NON_ADMINS])
async def test_only_administrators_may_use_the_admin_things(runtime_hub, admin, kind, role):
    """Each admin action with an input that would work for an admin is refused (403),
    and changes nothing."""
    me = f"{role}-1"
    runtime_hub.auth.add_client(me, kind, role)
    runtime_hub.auth.add_client("victim", "consumer", "viewer")
    victim_cert, _ = runtime_hub.ca.generate_for("victim")
    serial = f"{victim_cert.serial:032x}"
    connection = connect(runtime_hub, me, role)
    attempts = [
        (CLIENTS_THING, "addClient", {"clientID": "mallory", "kind": "consumer", "role": "admin"}),
        (CLIENTS_THING, "removeClient", {"clientID": "victim"}),
        (CLIENTS_THING, "listClients", ABSENT),
        (CLIENTS_THING, "setRole", {"clientID": me, "role": "admin"}),
        (CLIENTS_THING, "setPassword", {"clientID": ADMIN, "password": "taken-over-1"}),
        (CLIENTS_THING, "setEnabled", {"clientID": ADMIN, "enabled": False}),
        (CLIENTS_THING, "newToken", {"clientID": ADMIN}),
        (CERTS_THING, "issueCertificate", {"clientID": ADMIN, "csr": make_csr(ADMIN)[0]}),
        (CERTS_THING, "generateCertificate", {"clientID": ADMIN}),
        (CERTS_THING, "listCertificates", {}),
        (CERTS_THING, "revokeCertificate", {"serial": serial}),
    ]
    before = accounts(runtime_hub, admin)
    sessions_before = list(runtime_hub.store.bucket("sessions").keys())
    for thing_id, action, data in attempts:
        error = failed(invoke(runtime_hub, connection, thing_id, action, data), 403)
        assert error["title"] == "Forbidden"
        assert error["detail"] == f"only administrators may use {thing_id}", action
        assert error["operation"] == "invokeaction"

    assert accounts(runtime_hub, admin) == before
    assert list(runtime_hub.store.bucket("sessions").keys()) == sessions_before  # no token made
    assert [i.serial for i in runtime_hub.ca.list_issued()] == [victim_cert.serial]
    assert runtime_hub.ca.verify_client_certificate(victim_cert.cert_pem) == "victim"


@pytest.mark.parametrize("kind, role", NON_ADMINS, ids=[role for _, role in NON_ADMINS])
async def test_forbidden_comes_before_input_checks(runtime_hub, kind, role):
    """A non-admin learns nothing about the input schema or what exists."""
    runtime_hub.auth.add_client("someone", kind, role)
    connection = connect(runtime_hub, "someone", role)
    for data in (ABSENT, {}, {"clientID": "nobody"}, {"bogus": 1}):
        error = failed(invoke(runtime_hub, connection, CLIENTS_THING, "removeClient", data), 403)
        assert "validationErrors" not in error


ALL_ROLES = [*NON_ADMINS, ("consumer", "admin")]


@pytest.mark.parametrize("kind, role", ALL_ROLES, ids=[role for _, role in ALL_ROLES])
async def test_every_client_may_refresh_and_log_out(runtime_hub, kind, role):
    me = f"{role}-1"
    runtime_hub.auth.add_client(me, kind, role)
    login = runtime_hub.auth.new_token(me)
    session_id = runtime_hub.auth.authenticate_token(login["token"]).session_id
    connection = connect(runtime_hub, me, role, session_id)

    refreshed = ok(
        invoke(runtime_hub, connection, AUTHN_THING, "refresh", {"token": login["token"]})
    )
    assert (refreshed["clientID"], refreshed["role"]) == (me, role)
    assert refreshed["token"] != login["token"]
    assert runtime_hub.auth.authenticate_token(refreshed["token"]).session_id == session_id

    # Logging out with no token ends this connection's own session.
    assert ok(invoke(runtime_hub, connection, AUTHN_THING, "logout", {})) is None
    for token in (login["token"], refreshed["token"]):
        with pytest.raises(AuthenticationFailed):
            runtime_hub.auth.authenticate_token(token)
    # The connection's next request is refused as unauthenticated, and refresh too.
    failed(runtime_hub.router.handle(connection, request("readthing", AUTHN_THING)), 401)
    other = connect(runtime_hub, me, role)
    failed(invoke(runtime_hub, other, AUTHN_THING, "refresh", {"token": refreshed["token"]}), 401)


async def test_logout_with_a_token_ends_that_session_only(runtime_hub):
    runtime_hub.auth.add_client("vera", "consumer", "viewer")
    phone, laptop = runtime_hub.auth.new_token("vera"), runtime_hub.auth.new_token("vera")
    connection = connect(runtime_hub, "vera", "viewer")  # e.g. a certificate: no session
    assert (
        ok(invoke(runtime_hub, connection, AUTHN_THING, "logout", {"token": phone["token"]}))
        is None
    )
    with pytest.raises(AuthenticationFailed):
        runtime_hub.auth.authenticate_token(phone["token"])
    assert runtime_hub.auth.authenticate_token(laptop["token"]).id == "vera"
    # A connection without a session is not affected by logging out.
    assert runtime_hub.router.handle(connection, request("readthing", AUTHN_THING)).error is None


async def test_refresh_with_a_bad_token_is_a_401_and_without_one_a_400(runtime_hub):
    runtime_hub.auth.add_client("vera", "consumer", "viewer")
    vera = connect(runtime_hub, "vera", "viewer")
    error = failed(invoke(runtime_hub, vera, AUTHN_THING, "refresh", {"token": "not.a.token"}), 401)
    assert error["detail"] == "invalid credentials"
    error = failed(invoke(runtime_hub, vera, AUTHN_THING, "refresh", {}), 400)
    assert "token" in error["detail"]


async def test_non_admins_may_not_write_to_service_things(runtime_hub):
    runtime_hub.auth.add_client("mia", "consumer", "manager")
    mia = connect(runtime_hub, "mia", "manager")
    response = runtime_hub.router.handle(mia, request("writeproperty", AUTHN_THING, "x", input=1))
    assert failed(response, 400)["detail"].endswith("has no writable properties")


# -- bugs these tests found (fixed) -------------------------------------------------------


async def test_generate_for_a_client_id_too_long_for_a_certificate_is_a_400(runtime_hub, admin):
    long_id = "a" * 100
    runtime_hub.auth.add_client(long_id, "consumer", "viewer")
    error = failed(
        invoke(runtime_hub, admin, CERTS_THING, "generateCertificate", {"clientID": long_id}), 400
    )
    assert "64" in error["detail"]


@pytest.mark.parametrize(
    "thing_id, action", [(CERTS_THING, "listCertificates"), (AUTHN_THING, "logout")]
)
async def test_actions_whose_input_is_all_optional_need_no_input(
    runtime_hub, admin, thing_id, action
):
    ok(invoke(runtime_hub, admin, thing_id, action))


async def test_a_new_token_for_a_disabled_client_is_a_conflict_not_a_401(runtime_hub, admin):
    runtime_hub.auth.add_client("dora", "consumer", "viewer")
    runtime_hub.auth.update_client("dora", enabled=False)
    error = failed(invoke(runtime_hub, admin, CLIENTS_THING, "newToken", {"clientID": "dora"}), 409)
    assert "disabled" in error["detail"]
