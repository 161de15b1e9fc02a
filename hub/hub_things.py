"""The hub's own Things: authentication (refresh, logout), client administration,
certificates and history settings (docs/architecture.md). Only administrators may use
clients, certificates and history (auth.authorizer); every client may refresh or end
its own session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from auth.roles import KIND_ROLES, ROLES
from auth.service import AuthService
from certs import CertificateAuthority, CertificateError
from core.services import ServiceThing, service_td
from digitwin.core import DigiTwin
from digitwin.history import ThingHistory
from digitwin.state import RESTORE_TERM, restores
from vocabulary.identity import Client
from vocabulary.problems import BadRequest
from vocabulary.things import (
    AUTHN_THING,
    CERTS_THING,
    CLIENTS_THING,
    HISTORY_THING,
    RESTORE_THING,
)

_CLIENT_ID = {"type": "string", "minLength": 1, "maxLength": 128}
_ACCOUNT = {
    "type": "object",
    "properties": {
        "clientID": {"type": "string"},
        "kind": {"type": "string", "enum": list(KIND_ROLES)},
        "role": {"type": "string", "enum": list(ROLES)},
        "displayName": {"type": "string"},
        "enabled": {"type": "boolean"},
        "created": {"type": "string"},
        "updated": {"type": "string"},
        "hasPassword": {"type": "boolean"},
    },
}
_TOKEN = {
    "type": "object",
    "properties": {
        "token": {"type": "string"},
        "expires": {"type": "string"},
        "clientID": {"type": "string"},
        "role": {"type": "string"},
    },
}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


def authn_thing(auth: AuthService) -> ServiceThing:
    def refresh(client: Client, data: Any) -> Any:
        return auth.refresh(data["token"])

    def logout(client: Client, data: Any) -> Any:
        if isinstance(data, dict) and "token" in data:
            auth.logout(data["token"])
        elif client.session_id is not None:
            auth.end_session(client.session_id)
        return None

    td = service_td(
        AUTHN_THING,
        "Authentication",
        "Refresh a token while its session lasts, or end the session. Logging in with a "
        "password is done on the HTTP binding (POST /authn/login).",
        {
            "refresh": {
                "description": "A new token for the session of the given (possibly expired) token",
                "input": _object(["token"], token={"type": "string"}),
                "output": _TOKEN,
            },
            "logout": {
                "description": "End the session of the given token, or of this connection",
                "input": _object([], token={"type": "string"}),
            },
        },
    )
    return ServiceThing(td, {"refresh": refresh, "logout": logout})


def clients_thing(auth: AuthService, ca: CertificateAuthority) -> ServiceThing:
    def add(client: Client, data: Any) -> Any:
        return auth.add_client(
            data["clientID"],
            data["kind"],
            data["role"],
            display_name=data.get("displayName", ""),
            password=data.get("password"),
        ).to_dict()

    def remove(client: Client, data: Any) -> Any:
        if data["clientID"] == client.id:
            raise BadRequest("an administrator cannot remove itself")
        account = auth.remove_client(data["clientID"])
        ca.revoke_client(account.client_id)  # its certificates must not outlive it
        return account.to_dict()

    def list_all(client: Client, data: Any) -> Any:
        return [account.to_dict() for account in auth.accounts.list()]

    def set_role(client: Client, data: Any) -> Any:
        return auth.update_client(data["clientID"], role=data["role"]).to_dict()

    def set_password(client: Client, data: Any) -> Any:
        return auth.update_client(data["clientID"], password=data["password"]).to_dict()

    def set_enabled(client: Client, data: Any) -> Any:
        return auth.update_client(data["clientID"], enabled=data["enabled"]).to_dict()

    def new_token(client: Client, data: Any) -> Any:
        return auth.new_token(data["clientID"])

    td = service_td(
        CLIENTS_THING,
        "Clients",
        "Administration of the clients (agents, consumers, services) that may connect",
        {
            "addClient": {
                "input": _object(
                    ["clientID", "kind", "role"],
                    clientID=_CLIENT_ID,
                    kind={"type": "string", "enum": list(KIND_ROLES)},
                    role={"type": "string", "enum": list(ROLES)},
                    displayName={"type": "string"},
                    password={"type": "string", "minLength": 8},
                ),
                "output": _ACCOUNT,
            },
            "removeClient": {
                "input": _object(["clientID"], clientID=_CLIENT_ID),
                "output": _ACCOUNT,
            },
            "listClients": {"output": {"type": "array", "items": _ACCOUNT}},
            "setRole": {
                "input": _object(
                    ["clientID", "role"],
                    clientID=_CLIENT_ID,
                    role={"type": "string", "enum": list(ROLES)},
                ),
                "output": _ACCOUNT,
            },
            "setPassword": {
                "input": _object(
                    ["clientID", "password"],
                    clientID=_CLIENT_ID,
                    password={"type": "string", "minLength": 8},
                ),
                "output": _ACCOUNT,
            },
            "setEnabled": {
                "input": _object(
                    ["clientID", "enabled"], clientID=_CLIENT_ID, enabled={"type": "boolean"}
                ),
                "output": _ACCOUNT,
            },
            "newToken": {"input": _object(["clientID"], clientID=_CLIENT_ID), "output": _TOKEN},
        },
    )
    return ServiceThing(
        td,
        {
            "addClient": add,
            "removeClient": remove,
            "listClients": list_all,
            "setRole": set_role,
            "setPassword": set_password,
            "setEnabled": set_enabled,
            "newToken": new_token,
        },
    )


_CERTIFICATE = {
    "type": "object",
    "properties": {
        "serial": {"type": "string"},
        "clientID": {"type": "string"},
        "notBefore": {"type": "string"},
        "notAfter": {"type": "string"},
        "revoked": {"type": "boolean"},
        "revokedAt": {"type": "string"},
        "certificate": {"type": "string", "description": "PEM"},
    },
}
_DAYS = {"type": "integer", "minimum": 1, "maximum": 3650}


def certs_thing(ca: CertificateAuthority, auth: AuthService) -> ServiceThing:
    def existing_client(client_id: str) -> str:
        auth.accounts.require(client_id)  # a certificate only for a client that exists
        return client_id

    def issue(client: Client, data: Any) -> Any:
        client_id = existing_client(data["clientID"])
        try:
            issued = ca.issue_from_csr(data["csr"].encode(), client_id, days=data.get("days", 365))
        except CertificateError as exc:
            raise BadRequest(str(exc)) from None
        return {**issued.to_dict(), "caCertificate": ca.ca_cert_pem.decode()}

    def generate(client: Client, data: Any) -> Any:
        client_id = existing_client(data["clientID"])
        try:
            issued, key_pem = ca.generate_for(client_id, days=data.get("days", 365))
        except CertificateError as exc:  # e.g. an id too long for a certificate's CN
            raise BadRequest(str(exc)) from None
        return {
            **issued.to_dict(),
            "privateKey": key_pem.decode(),
            "caCertificate": ca.ca_cert_pem.decode(),
        }

    def list_all(client: Client, data: Any) -> Any:
        client_id = data.get("clientID") if isinstance(data, dict) else None
        return [issued.to_dict() for issued in ca.list_issued(client_id)]

    def revoke(client: Client, data: Any) -> Any:
        try:
            serial = int(data["serial"], 16)
            return ca.revoke(serial).to_dict()
        except (ValueError, CertificateError) as exc:
            raise BadRequest(f"cannot revoke {data['serial']!r}: {exc}") from None

    td = service_td(
        CERTS_THING,
        "Certificates",
        "Client certificates issued by the hub's CA: issue from a CSR, generate a key pair, "
        "list, revoke",
        {
            "issueCertificate": {
                "description": "Sign a client's CSR (PEM); the certificate's CN is the client id",
                "input": _object(
                    ["clientID", "csr"], clientID=_CLIENT_ID, csr={"type": "string"}, days=_DAYS
                ),
                "output": _CERTIFICATE,
            },
            "generateCertificate": {
                "description": "Make a key pair and certificate; the key is returned once",
                "input": _object(["clientID"], clientID=_CLIENT_ID, days=_DAYS),
                "output": _CERTIFICATE,
            },
            "listCertificates": {
                "input": _object([], clientID=_CLIENT_ID),
                "output": {"type": "array", "items": _CERTIFICATE},
            },
            "revokeCertificate": {
                "input": _object(
                    ["serial"], serial={"type": "string", "pattern": "^[0-9a-fA-F]+$"}
                ),
                "output": _CERTIFICATE,
            },
        },
    )
    return ServiceThing(
        td,
        {
            "issueCertificate": issue,
            "generateCertificate": generate,
            "listCertificates": list_all,
            "revokeCertificate": revoke,
        },
    )


_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}}
_HISTORY_SETTING = {
    "type": "object",
    "properties": {
        "enabled": {"type": "boolean", "description": "history of this Thing on or off"},
        "offProperties": {**_NAMES, "description": "properties whose values are not kept"},
        "offEvents": {**_NAMES, "description": "events that are not kept"},
        "maxAge": {"type": "number", "minimum": 0, "description": "seconds; 0: for ever"},
        "maxCount": {"type": "integer", "minimum": 0, "description": "per affordance; 0: all"},
    },
    "additionalProperties": False,
}
_THING_ID = {"type": "string", "minLength": 1}


@dataclass(frozen=True)
class _SettingsThing:
    """A hub Thing that keeps one setting per Thing for the administrators:
    ``setSetting`` {thingID, <field>} stores it, ``getSetting`` {thingID} describes it;
    both answer ``describe(thingID)``."""

    thing_id: str
    title: str
    description: str
    field: str  # the setting's name in setSetting's input
    schema: dict[str, Any]  # its data schema
    removal: str  # how a setting is removed, for the action's description
    described: dict[str, Any]  # the schema of what describe answers
    store: Callable[[str, Any], None]  # (thing id, the field's value)
    describe: Callable[[str], dict[str, Any]]

    def service(self) -> ServiceThing:
        def set_setting(client: Client, data: Any) -> Any:
            self.store(data["thingID"], data[self.field])
            return self.describe(data["thingID"])

        def get_setting(client: Client, data: Any) -> Any:
            return self.describe(data["thingID"])

        required = ["thingID", self.field]
        setting_input = _object(required, thingID=_THING_ID, **{self.field: self.schema})
        td = service_td(
            self.thing_id,
            self.title,
            self.description,
            {
                "setSetting": {
                    "description": f"Set a Thing's setting ({self.removal})",
                    "input": setting_input,
                    "output": self.described,
                },
                "getSetting": {
                    "description": "A Thing's stored setting, and what is in effect",
                    "input": _object(["thingID"], thingID=_THING_ID),
                    "output": self.described,
                },
            },
        )
        return ServiceThing(td, {"setSetting": set_setting, "getSetting": get_setting})


def history_thing(twin: DigiTwin) -> ServiceThing:
    """Per-Thing history settings kept in the store: they need no TD change and win over
    the file's ``[[history.things]]`` (docs/history.md)."""

    def describe(thing_id: str) -> dict[str, Any]:
        enabled, retention, merged = twin.history.effective(thing_id)
        stored = twin.history.setting(thing_id)
        effective = {
            **merged.to_dict(),
            "enabled": enabled,
            "maxAge": retention.max_age,
            "maxCount": retention.max_count,
        }
        return {
            "thingID": thing_id,
            "setting": stored.to_dict() if stored else {},
            "effective": effective,
        }

    def store(thing_id: str, setting: Any) -> None:
        twin.set_history_setting(thing_id, ThingHistory.from_dict(setting or {}))

    described = {
        "type": "object",
        "properties": {
            "thingID": {"type": "string"},
            "setting": _HISTORY_SETTING,
            "effective": _HISTORY_SETTING,
        },
    }
    return _SettingsThing(
        HISTORY_THING,
        "History",
        "Per-Thing settings of the value history: on or off, properties and events left "
        "out, retention. Reading history is done on each Thing (queryhistory).",
        "setting",
        _HISTORY_SETTING,
        "an empty one removes it",
        described,
        store,
        describe,
    ).service()


def restore_thing(twin: DigiTwin) -> ServiceThing:
    """Configuration restore per Thing, set by the administrators: on for a device whose
    TD does not ask for it (a TD nobody can change), or off for one that does. It is kept
    in the store and wins over the TD's ``wothub:restoreConfiguration`` (digitwin.md)."""

    def describe(thing_id: str) -> dict[str, Any]:
        setting = twin.restore_setting(thing_id)
        record = twin.thing(thing_id)
        return {
            "thingID": thing_id,
            "restore": setting,
            "registered": record is not None,
            "effective": record is not None and restores(record.td, setting),
        }

    restore = {
        "oneOf": [{"type": "boolean"}, {"type": "null"}],
        "description": f"true or false: wins over the TD's {RESTORE_TERM}; null: the TD decides",
    }
    described = {
        "type": "object",
        "properties": {
            "thingID": {"type": "string"},
            "restore": restore,
            "registered": {"type": "boolean"},
            "effective": {"type": "boolean", "description": "whether a restore happens now"},
        },
    }
    return _SettingsThing(
        RESTORE_THING,
        "Configuration restore",
        "Whether a Thing gets the last values of its writable properties when its agent "
        "comes online, whatever its TD says.",
        "restore",
        restore,
        "null removes it",
        described,
        twin.set_restore_setting,
        describe,
    ).service()
