"""Administration from the command line, over the hub's HTTPS API (bindings.http.client):
``wothub clients``, ``wothub certs`` and ``wothub things``.

Where the hub is: ``--url`` (env WOTHUB_URL), else ``local_url`` in
``<home>/listeners.json``, which a running hub writes. The CA to trust: ``--ca`` (env
WOTHUB_CA), else ``<home>/certs/ca.pem``. Who is asking: ``--token`` (env WOTHUB_TOKEN);
or ``--client-id`` (env WOTHUB_CLIENT_ID, default ``admin``) with the password from
``--login-password-file`` (env WOTHUB_PASSWORD_FILE) or env WOTHUB_PASSWORD; else
``admin`` with ``<home>/admin.password`` (first run) when it is readable.

Exit codes: 0 done, 1 the hub refused the request (its problem's title and detail are
printed), 2 usage or configuration error, 3 the hub cannot be reached, 4 not logged in
or not allowed.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auth.authorizer import CERTS_THING, CLIENTS_THING
from auth.roles import KIND_ROLES, ROLES

from .cli import add_command
from .config import default_home
from .listeners import LISTENERS_FILE, is_running, read_listeners

KINDS = tuple(KIND_ROLES)

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_AUTH = 1, 2, 3, 4


class CommandError(Exception):
    """A one-line message for stderr and the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# -- finding the hub and logging in ------------------------------------------------------


@dataclass
class Target:
    url: str
    ca: bytes | None
    token: str | None = None
    client_id: str | None = None
    password: str | None = None
    password_source: str | None = None


def _home(args: argparse.Namespace) -> Path:
    return args.home if args.home is not None else default_home()


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def find_target(args: argparse.Namespace) -> Target:
    """The hub's URL, its CA and the credentials, from the flags, the environment and
    the hub's home."""
    url = args.url or _env("WOTHUB_URL")
    if url is None:
        home = _home(args)
        document = read_listeners(home)
        listener = (document or {}).get("listeners", {}).get("https") or {}
        url = listener.get("local_url") or listener.get("url")
        if document is None or not url:
            raise CommandError(
                f"cannot find the hub: no --url (or WOTHUB_URL) and no "
                f"{home / LISTENERS_FILE} (is `wothub serve` running? with --home "
                f"or WOTHUB_HOME pointing at its home?)",
                EXIT_UNREACHABLE,
            )
        if not is_running(document):
            raise CommandError(
                f"cannot reach the hub at {url}: the process that wrote "
                f"{home / LISTENERS_FILE} (pid {document['pid']}) is gone "
                f"(is `wothub serve` running?)",
                EXIT_UNREACHABLE,
            )
    ca_path = args.ca or _env("WOTHUB_CA")
    ca_file = Path(ca_path) if ca_path else _home(args) / "certs" / "ca.pem"
    try:
        ca = ca_file.read_bytes()
    except OSError as exc:
        if ca_path:
            raise CommandError(
                f"cannot read the CA certificate {ca_file}: {exc.strerror}", EXIT_USAGE
            ) from None
        ca = None  # not on this machine: the system's trust store
    target = Target(url=url.rstrip("/"), ca=ca)

    token = args.token or _env("WOTHUB_TOKEN")
    if token:
        target.token = token
        return target
    client_id = args.client_id or _env("WOTHUB_CLIENT_ID")
    password_file = args.login_password_file or _env("WOTHUB_PASSWORD_FILE")
    if password_file:
        target.password = _read_secret(Path(password_file))
        target.password_source = str(password_file)
    elif password := _env("WOTHUB_PASSWORD"):
        target.password, target.password_source = password, "WOTHUB_PASSWORD"
    elif client_id in (None, "admin"):
        default = _home(args) / "admin.password"
        try:
            target.password = default.read_text().strip()
            target.password_source = str(default)
        except OSError:
            pass
    if target.password is None and client_id is not None and sys.stdin.isatty():
        # Nothing given, someone at a terminal: ask (no echo), as ssh or psql do.
        target.password = getpass.getpass(f"password for {client_id}: ")
        target.password_source = "the terminal"
    if target.password is not None:
        target.client_id = client_id or "admin"
    elif client_id is not None:
        raise CommandError(
            f"no password for {client_id!r}: give --login-password-file, or set "
            f"WOTHUB_PASSWORD_FILE or WOTHUB_PASSWORD (or run it at a terminal to be asked)",
            EXIT_AUTH,
        )
    return target


def _read_secret(path: Path) -> str:
    try:
        text = path.read_text()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    secret = text.splitlines()[0] if text.strip() else ""
    if not secret:
        raise CommandError(f"{path} is empty", EXIT_USAGE)
    return secret


Action = Callable[[Any, argparse.Namespace], Awaitable[int]]


def run_action(args: argparse.Namespace, action: Action) -> int:
    """Connect, log in, run ``action(client, args)``; errors as one line and a code."""
    from bindings.http.client import HubError, HubUnreachable

    try:
        target = find_target(args)
        return asyncio.run(_with_client(target, args, action))
    except CommandError as exc:
        _error(str(exc))
        return exc.code
    except HubUnreachable as exc:
        if exc.tls:
            _error(
                f"cannot verify the hub's certificate at {exc.url}: {exc.reason} "
                f"(is --ca the hub's CA, <home>/certs/ca.pem?)"
            )
        else:
            _error(f"cannot reach the hub at {exc.url}: {exc.reason} (is `wothub serve` running?)")
        return EXIT_UNREACHABLE
    except HubError as exc:
        text = exc.detail or exc.title
        if exc.status == 401:
            _error(f"not logged in: {text}")
            return EXIT_AUTH
        if exc.status == 403:
            _error(f"refused: {text}")
            return EXIT_AUTH
        _error(f"{exc.title}: {exc.detail}" if exc.detail else exc.title)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130


async def _with_client(target: Target, args: argparse.Namespace, action: Action) -> int:
    from bindings.http.client import HttpConsumer, HubError

    try:
        consumer = HttpConsumer(target.url, ca=target.ca, token=target.token)
    except (ssl.SSLError, ValueError) as exc:
        raise CommandError(f"cannot use the CA certificate: {exc}", EXIT_USAGE) from None
    async with consumer as client:
        if target.password is not None:
            assert target.client_id is not None
            try:
                await client.login(target.client_id, target.password)
            except HubError as exc:
                if exc.status == 401:
                    raise CommandError(
                        f"not logged in: {target.client_id!r} with the password from "
                        f"{target.password_source} was refused ({exc.detail or exc.title})",
                        EXIT_AUTH,
                    ) from None
                raise
        try:
            return await action(client, args)
        except HubError as exc:
            if exc.status == 401 and target.token is None and target.password is None:
                raise CommandError(
                    "not logged in: no credentials (give --token, or --client-id with "
                    "--login-password-file, or set WOTHUB_TOKEN or WOTHUB_PASSWORD_FILE)",
                    EXIT_AUTH,
                ) from None
            raise


def _error(message: str) -> None:
    print(f"wothub: {message}", file=sys.stderr)


# -- output ------------------------------------------------------------------------------


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def print_table(rows: Iterable[Mapping[str, Any]], columns: list[tuple[str, str]]) -> None:
    """``columns``: (key, heading) pairs."""
    cells = [[heading for _, heading in columns]]
    for row in rows:
        cells.append([_cell(row.get(key)) for key, _ in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _shown(args: argparse.Namespace, result: dict[str, Any], columns) -> int:
    """One result: a one-row table, or JSON with --json."""
    return _listing(args, result, columns) if args.json else _listing(args, [result], columns)


def _listing(args: argparse.Namespace, rows: Any, columns) -> int:
    if args.json:
        print_json(rows)
    else:
        print_table(rows, columns)
    return 0


# -- arguments shared by every admin subcommand --------------------------------------------


def add_connection_arguments(parser: argparse.ArgumentParser, *, password_file: bool) -> None:
    group = parser.add_argument_group("connecting to the hub")
    group.add_argument(
        "--url",
        metavar="URL",
        help="the hub's HTTPS URL (env WOTHUB_URL; default: from "
        "<home>/listeners.json of a running hub)",
    )
    group.add_argument(
        "--home",
        type=Path,
        metavar="DIR",
        help="the hub's home (env WOTHUB_HOME; default $XDG_DATA_HOME/wothub or "
        "~/.local/share/wothub)",
    )
    group.add_argument(
        "--ca",
        metavar="FILE",
        help="the hub's CA certificate (env WOTHUB_CA; default <home>/certs/ca.pem)",
    )
    group.add_argument("--token", metavar="TOKEN", help="a bearer token (env WOTHUB_TOKEN)")
    group.add_argument(
        "--client-id",
        metavar="ID",
        help="log in as this client (env WOTHUB_CLIENT_ID; default admin)",
    )
    flags = ["--login-password-file"] + (["--password-file"] if password_file else [])
    group.add_argument(
        *flags,
        dest="login_password_file",
        metavar="FILE",
        help="file whose first line is the login password (env WOTHUB_PASSWORD_FILE, or "
        "the password itself in WOTHUB_PASSWORD; default for admin: <home>/admin.password)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _subcommands(
    parser: argparse.ArgumentParser,
    specs: list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Action]],
    *,
    new_password: tuple[str, ...] = (),
) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help, configure, action in specs:
        sub = actions.add_parser(name, help=help, description=help)
        configure(sub)
        # Where this action takes a new password from a file, --password-file is that
        # file; the login password file is --login-password-file there.
        add_connection_arguments(sub, password_file=name not in new_password)
        sub.set_defaults(admin_action=action)


def _run(args: argparse.Namespace) -> int:
    return run_action(args, args.admin_action)


# -- wothub clients ----------------------------------------------------------------------

_CLIENT_COLUMNS = [
    ("clientID", "ID"),
    ("kind", "KIND"),
    ("role", "ROLE"),
    ("enabled", "ENABLED"),
    ("hasPassword", "PASSWORD"),
    ("displayName", "NAME"),
]


async def _clients_list(client, args) -> int:
    accounts = await client.invoke_service(CLIENTS_THING, "listClients")
    return _listing(args, sorted(accounts, key=lambda a: a["clientID"]), _CLIENT_COLUMNS)


def _role_of(kind: str, role: str | None) -> str:
    """``--role``, or the one role ``--kind`` allows (agent, service)."""
    if role is not None:
        return role
    roles = KIND_ROLES[kind]
    if len(roles) == 1:
        return roles[0]
    raise CommandError(f"a {kind} needs --role, one of: {', '.join(roles)}", EXIT_USAGE)


async def _clients_add(client, args) -> int:
    role = _role_of(args.kind, args.role)
    data: dict[str, Any] = {"clientID": args.id, "kind": args.kind, "role": role}
    if args.display_name:
        data["displayName"] = args.display_name
    password = args.password
    if args.password_file is not None:
        password = _read_secret(Path(args.password_file))
    if password is not None:
        data["password"] = password
    return _shown(
        args, await client.invoke_service(CLIENTS_THING, "addClient", data), _CLIENT_COLUMNS
    )


async def _clients_remove(client, args) -> int:
    removed = await client.invoke_service(CLIENTS_THING, "removeClient", {"clientID": args.id})
    return _shown(args, removed, _CLIENT_COLUMNS)


async def _clients_set_role(client, args) -> int:
    data = {"clientID": args.id, "role": args.role}
    return _shown(
        args, await client.invoke_service(CLIENTS_THING, "setRole", data), _CLIENT_COLUMNS
    )


async def _clients_set_password(client, args) -> int:
    if args.password_file is not None:
        password = _read_secret(Path(args.password_file))
    else:
        password = _ask_password(args.id)
    data = {"clientID": args.id, "password": password}
    changed = await client.invoke_service(CLIENTS_THING, "setPassword", data)
    return _shown(args, changed, _CLIENT_COLUMNS)


def _ask_password(client_id: str) -> str:
    if not sys.stdin.isatty():  # piped in: the first line
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"new password for {client_id}: ")
        if getpass.getpass("again: ") != password:
            raise CommandError("the passwords differ", EXIT_USAGE)
    if not password:
        raise CommandError("no password given", EXIT_USAGE)
    return password


async def _clients_new_token(client, args) -> int:
    token = await client.invoke_service(CLIENTS_THING, "newToken", {"clientID": args.id})
    return _shown(args, token, [("clientID", "ID"), ("expires", "EXPIRES"), ("token", "TOKEN")])


def _configure_clients(parser: argparse.ArgumentParser) -> None:
    def with_id(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("id", metavar="ID", help="the client's id")

    def add(sub: argparse.ArgumentParser) -> None:
        with_id(sub)
        sub.add_argument("--kind", required=True, choices=KINDS)
        sub.add_argument(
            "--role", choices=ROLES, help="needed for a consumer; an agent or service has one"
        )
        sub.add_argument("--display-name", metavar="NAME")
        given = sub.add_mutually_exclusive_group()
        given.add_argument(
            "--password",
            metavar="P",
            help="its password (visible to other users of this machine; prefer --password-file)",
        )
        given.add_argument(
            "--password-file", metavar="FILE", help="file whose first line is its password"
        )

    def set_role(sub: argparse.ArgumentParser) -> None:
        with_id(sub)
        sub.add_argument("role", metavar="ROLE", choices=ROLES, help=", ".join(ROLES))

    def set_password(sub: argparse.ArgumentParser) -> None:
        with_id(sub)
        sub.add_argument(
            "--password-file",
            metavar="FILE",
            help="file whose first line is the new password (default: asked for, or the "
            "first line of standard input)",
        )

    _subcommands(
        parser,
        [
            ("list", "list the clients", lambda sub: None, _clients_list),
            ("add", "add a client", add, _clients_add),
            ("remove", "remove a client (its certificates are revoked)", with_id, _clients_remove),
            ("set-role", "change a client's role", set_role, _clients_set_role),
            (
                "set-password",
                "change a client's password (ends its sessions)",
                set_password,
                _clients_set_password,
            ),
            (
                "new-token",
                "a token for a client, without its password",
                with_id,
                _clients_new_token,
            ),
        ],
        new_password=("add", "set-password"),
    )


# -- wothub certs ------------------------------------------------------------------------

_CERT_COLUMNS = [
    ("serial", "SERIAL"),
    ("clientID", "CLIENT"),
    ("notAfter", "NOT AFTER"),
    ("revoked", "REVOKED"),
]


def _file_name(client_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]", "_", client_id).lstrip(".") or "client"


_ISSUED_COLUMNS = [
    ("serial", "SERIAL"),
    ("clientID", "CLIENT"),
    ("notAfter", "NOT AFTER"),
    ("certificate", "CERTIFICATE"),
]


def _summary(issued: Mapping[str, Any], **files: str) -> dict[str, Any]:
    keep = ("serial", "clientID", "notBefore", "notAfter")
    return {**{k: issued[k] for k in keep if k in issued}, **files}


async def _certs_issue(client, args) -> int:
    try:
        csr = Path(args.csr).read_text()
    except OSError as exc:
        raise CommandError(f"cannot read {args.csr}: {exc.strerror or exc}", EXIT_USAGE) from None
    data: dict[str, Any] = {"clientID": args.id, "csr": csr}
    if args.days is not None:
        data["days"] = args.days
    issued = await client.invoke_service(CERTS_THING, "issueCertificate", data)
    if args.out is None:
        print_json(issued)
        return 0
    out = Path(args.out)
    _write(out, issued["certificate"].encode(), 0o644)
    return _shown(args, _summary(issued, certificate=str(out)), _ISSUED_COLUMNS)


async def _certs_generate(client, args) -> int:
    directory = Path(args.out_dir)
    base = _file_name(args.id)
    cert_path, key_path = directory / f"{base}.pem", directory / f"{base}.key"
    ca_path = directory / "ca.pem"
    if key_path.exists():  # checked before the hub makes a key nobody would get
        raise CommandError(f"{key_path} exists; remove it or choose --out-dir", EXIT_USAGE)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        message = f"cannot create {directory}: {exc.strerror or exc}"
        raise CommandError(message, EXIT_USAGE) from None
    data: dict[str, Any] = {"clientID": args.id}
    if args.days is not None:
        data["days"] = args.days
    issued = await client.invoke_service(CERTS_THING, "generateCertificate", data)
    _write(key_path, issued["privateKey"].encode(), 0o600, exclusive=True)
    _write(cert_path, issued["certificate"].encode(), 0o644)
    _write(ca_path, issued["caCertificate"].encode(), 0o644)
    summary = _summary(
        issued, certificate=str(cert_path), privateKey=str(key_path), ca=str(ca_path)
    )
    return _shown(args, summary, [*_ISSUED_COLUMNS, ("privateKey", "KEY"), ("ca", "CA")])


def _write(path: Path, data: bytes, mode: int, *, exclusive: bool = False) -> None:
    """Write ``path`` with ``mode`` from its first byte (a key is never readable by
    others, not even for a moment)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    try:
        descriptor = os.open(path, flags, mode)
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}", EXIT_REFUSED) from None


async def _certs_list(client, args) -> int:
    data = {"clientID": args.id} if args.id else {}
    issued = await client.invoke_service(CERTS_THING, "listCertificates", data)
    rows = [{k: v for k, v in cert.items() if k != "certificate"} for cert in issued]
    if args.json:
        print_json(issued)
        return 0
    print_table(rows, _CERT_COLUMNS)
    return 0


async def _certs_revoke(client, args) -> int:
    revoked = await client.invoke_service(CERTS_THING, "revokeCertificate", {"serial": args.serial})
    return _shown(args, {k: v for k, v in revoked.items() if k != "certificate"}, _CERT_COLUMNS)


def _configure_certs(parser: argparse.ArgumentParser) -> None:
    def days(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--days", type=int, metavar="N", help="valid for N days (default 365)")

    def issue(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("id", metavar="ID", help="the client the certificate is for")
        sub.add_argument("--csr", required=True, metavar="FILE", help="its CSR (PEM)")
        days(sub)
        sub.add_argument(
            "--out",
            metavar="FILE",
            help="write the certificate (PEM) here; default: print everything as JSON",
        )

    def generate(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("id", metavar="ID", help="the client the certificate is for")
        days(sub)
        sub.add_argument(
            "--out-dir",
            default=".",
            metavar="DIR",
            help="where to write ID.pem, ID.key (mode 0600) and ca.pem (default: here)",
        )

    def list_(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("id", metavar="ID", nargs="?", help="only this client's")

    def revoke(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("serial", metavar="SERIAL", help="the serial number (hex)")

    _subcommands(
        parser,
        [
            ("issue", "sign a client's CSR", issue, _certs_issue),
            (
                "generate",
                "make a key pair and a certificate for a client",
                generate,
                _certs_generate,
            ),
            ("list", "list the certificates issued", list_, _certs_list),
            ("revoke", "revoke a certificate", revoke, _certs_revoke),
        ],
    )


# -- wothub things -----------------------------------------------------------------------


async def _things_list(client, args) -> int:
    tds = [td async for td in client.things()]
    if args.json:
        print_json(tds)
        return 0
    rows = [{"id": td.get("id"), "title": td.get("title")} for td in tds]
    print_table(rows, [("id", "ID"), ("title", "TITLE")])
    return 0


async def _things_get(client, args) -> int:
    print_json(await client.thing(args.id))
    return 0


async def _things_delete(client, args) -> int:
    await client.delete_thing(args.id)
    return _shown(args, {"id": args.id, "deleted": True}, [("id", "ID"), ("deleted", "DELETED")])


def _configure_things(parser: argparse.ArgumentParser) -> None:
    def with_id(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("id", metavar="ID", help="the Thing's id")

    _subcommands(
        parser,
        [
            ("list", "list the Things in the directory", lambda sub: None, _things_list),
            ("get", "print a Thing's TD", with_id, _things_get),
            ("delete", "remove a Thing from the directory", with_id, _things_delete),
        ],
    )


add_command("clients", "administer the clients that may connect", _configure_clients, _run)
add_command("certs", "client certificates from the hub's CA", _configure_certs, _run)
add_command("things", "the Things in the hub's directory", _configure_things, _run)
