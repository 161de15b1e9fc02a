"""Administration from the command line, over the hub's HTTPS API (clients.http):
``wothub clients``, ``wothub certs`` and ``wothub things``.

Where the hub is: ``--url`` (env WOTHUB_URL), else ``local_url`` in
``<home>/listeners.json``, which a running hub writes. The CA to trust: ``--ca`` (env
WOTHUB_CA), else ``<home>/certs/ca.pem``. Who is asking: ``--token`` (env WOTHUB_TOKEN);
or ``--client-id`` (env WOTHUB_CLIENT_ID, default ``admin``) with the password from
``--password-file`` (alias ``--login-password-file``; env WOTHUB_PASSWORD_FILE) or env
WOTHUB_PASSWORD; else ``admin`` with ``<home>/admin.password`` (first run) when it is
readable. ``--password-file`` is that login password in every command; a new client's
password is ``--new-password-file`` (or ``--new-password``).

Errors are one line on stderr, ``wothub: `` and a lower-case sentence without a final
period: what went wrong, then (after ``;``) what to do. Exit codes: 0 done, 1 the hub
refused the request (its problem's status, title and detail are printed), 2 usage or
configuration error, 3 the hub cannot be reached, 4 not logged in or not allowed.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import json
import os
import re
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from auth.roles import KIND_ROLES, ROLES
from vocabulary.things import CERTS_THING, CLIENTS_THING

from .commands import add_command
from .config import default_home
from .listeners import LISTENERS_FILE, is_running, read_listeners

KINDS = tuple(KIND_ROLES)

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_AUTH = 1, 2, 3, 4
UNAVAILABLE_RETRIES = 3  # a 503 with Retry-After, asked again (README, the admin commands)
MAX_RETRY_WAIT = 10  # seconds, at most, before asking again (unavailable_wait)


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
    ca_source: str | None = None  # how it was given, for messages
    token: str | None = None
    client_id: str | None = None
    password: str | None = None
    password_source: str | None = None
    admin_password_file: Path | None = None  # tried for the default login, not readable


def _home(args: argparse.Namespace) -> Path:
    return args.home if args.home is not None else default_home()


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _given(args: argparse.Namespace, dest: str, flag: str, env: str) -> tuple[str | None, str]:
    """The value of ``--flag`` or else of env ``env``, and how it was given (for messages:
    ``--flag VALUE`` or ``ENV=VALUE``)."""
    if value := getattr(args, dest):
        return value, f"{flag} {value}"
    value = _env(env)
    return value, f"{env}={value}"


def find_target(args: argparse.Namespace) -> Target:
    """The hub's URL, its CA and the credentials, from the flags, the environment and
    the hub's home."""
    url, url_source = _given(args, "url", "--url", "WOTHUB_URL")
    if url is None:
        home = _home(args)
        document = read_listeners(home)
        listener = (document or {}).get("listeners", {}).get("https") or {}
        url = listener.get("local_url") or listener.get("url")
        if document is None or not url:
            raise CommandError(
                f"cannot find the hub: no --url, no WOTHUB_URL and no {home / LISTENERS_FILE} "
                f"of a running hub; start it with `wothub serve`, or give its home with "
                f"--home DIR (or WOTHUB_HOME), or its address with --url URL",
                EXIT_UNREACHABLE,
            )
        if not is_running(document):
            raise CommandError(
                f"cannot reach the hub at {url}: the hub that wrote {home / LISTENERS_FILE} "
                f"(pid {document['pid']}) is no longer running; start it with `wothub serve`",
                EXIT_UNREACHABLE,
            )
    else:
        check_url(url, url_source)
    ca_path, ca_source = _given(args, "ca", "--ca", "WOTHUB_CA")
    ca_file = Path(ca_path) if ca_path else _home(args) / "certs" / "ca.pem"
    try:
        ca = ca_file.read_bytes()
    except OSError as exc:
        if ca_path:
            raise CommandError(
                f"cannot read {ca_source}: {exc.strerror or exc}; give the hub's CA "
                f"certificate, the file certs/ca.pem in its home",
                EXIT_USAGE,
            ) from None
        ca = None  # not on this machine: the system's trust store
    target = Target(url=url.rstrip("/"), ca=ca, ca_source=ca_source if ca_path else str(ca_file))

    token = args.token or _env("WOTHUB_TOKEN")
    if token:
        target.token = token
        return target
    client_id = args.client_id or _env("WOTHUB_CLIENT_ID")
    password_file, password_source = _given(
        args, "login_password_file", "--password-file", "WOTHUB_PASSWORD_FILE"
    )
    if password_file:
        target.password = _read_secret(Path(password_file), password_source)
        target.password_source = str(password_file)
    elif password := _env("WOTHUB_PASSWORD"):
        target.password, target.password_source = password, "WOTHUB_PASSWORD"
    elif client_id in (None, "admin"):
        default = _home(args) / "admin.password"
        try:
            target.password = default.read_text().strip()
            target.password_source = str(default)
        except OSError:
            target.admin_password_file = default
    if target.password is None and client_id is not None and sys.stdin.isatty():
        # Nothing given, someone at a terminal: ask (no echo), as ssh or psql do.
        target.password = _prompt(f"password for {client_id}: ")
        target.password_source = "the terminal"
    if target.password is not None:
        target.client_id = client_id or "admin"
    elif client_id is not None:
        raise CommandError(
            f"no password for {client_id!r}: give --password-file FILE, or set "
            f"WOTHUB_PASSWORD_FILE or WOTHUB_PASSWORD, or run the command at a terminal "
            f"to type it",
            EXIT_AUTH,
        )
    return target


def check_url(url: str, source: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError when the port is not a number)
        valid = parts.scheme == "https" and bool(parts.hostname)
    except ValueError:  # a bad port or IPv6 address
        valid = False
    if not valid:
        raise CommandError(
            f"{source} is not the address of a hub; give https://HOST:PORT (the URL "
            f"`wothub serve` logs at its start)",
            EXIT_USAGE,
        )


def _prompt(text: str) -> str | None:
    """A password typed at the terminal without echo; None at end of input (Ctrl-D)."""
    try:
        return getpass.getpass(text)
    except EOFError:
        print(file=sys.stderr)  # end the prompt's line
        return None


def _read_secret(path: Path, source: str) -> str:
    """The first line of the password file ``path``; ``source`` is how it was given
    (``--password-file FILE``, say)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CommandError(
            f"cannot read {source}: {exc.strerror or exc}; give a readable file whose first "
            f"line is the password",
            EXIT_USAGE,
        ) from None
    secret = text.splitlines()[0] if text.strip() else ""
    if not secret:
        raise CommandError(
            f"the first line of {source} is empty; put the password on it", EXIT_USAGE
        )
    return secret


Action = Callable[[Any, argparse.Namespace], Awaitable[int]]


def run_action(args: argparse.Namespace, action: Action) -> int:
    """Connect, log in, run ``action(client, args)``; errors as one line and a code."""
    from clients.errors import Disconnected, HubError, HubTimeout, HubUnreachable

    target: Target | None = None
    try:
        target = find_target(args)
        return asyncio.run(_with_client(target, args, action))
    except CommandError as exc:
        _error(str(exc))
        return exc.code
    except HubUnreachable as exc:
        if exc.tls:
            trusted = target.ca_source if target and target.ca else "the system's trusted CAs"
            _error(
                f"cannot verify the hub's certificate at {exc.url} with {trusted}: "
                f"{exc.reason}; give the hub's CA certificate (the file certs/ca.pem in its "
                f"home) with --ca FILE"
            )
        else:
            _error(
                f"cannot reach the hub at {exc.url}: {_unreachable_reason(exc)}; check the "
                f"URL, and that `wothub serve` is running there"
            )
        return EXIT_UNREACHABLE
    except (Disconnected, HubTimeout) as exc:
        where = target.url if target is not None else "the hub"
        _error(f"no answer from the hub at {where} ({exc}); check that `wothub serve` runs there")
        return EXIT_UNREACHABLE
    except HubError as exc:
        detail = exc.detail or exc.title
        if exc.status == 401:
            how = "the token" if target is not None and target.token else "the login"
            _error(
                f"not logged in: the hub refused {how} ({detail}); give a valid --token, or "
                f"--client-id ID with --password-file FILE"
            )
            return EXIT_AUTH
        if exc.status == 403:
            _error(f"not allowed: {detail}; log in as a client whose role allows it")
            return EXIT_AUTH
        answer = f"the hub answered {exc.status} {exc.title}"
        _error(f"{answer}: {exc.detail}" if exc.detail else answer)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130


def _unreachable_reason(exc: Exception) -> str:
    # A name that does not resolve reaches here as "Unknown error -2" (os.strerror of a
    # getaddrinfo code); say what it is.
    cause = getattr(exc.__cause__, "os_error", None)
    if isinstance(cause, socket.gaierror):
        return f"cannot resolve its host name ({cause.strerror})"
    return str(getattr(exc, "reason", exc))


async def _with_client(target: Target, args: argparse.Namespace, action: Action) -> int:
    from clients.errors import HubError
    from clients.http import HttpConsumer

    try:
        consumer = HttpConsumer(target.url, ca=target.ca, token=target.token)
    except (ssl.SSLError, ValueError) as exc:
        raise CommandError(
            f"{target.ca_source} is not a CA certificate ({exc}); give the hub's CA "
            f"certificate (PEM), the file certs/ca.pem in its home",
            EXIT_USAGE,
        ) from None
    async with consumer as client:
        if target.password is not None:
            assert target.client_id is not None
            try:
                await client.login(target.client_id, target.password)
            except HubError as exc:
                if exc.status == 401:
                    raise CommandError(
                        f"not logged in: the hub refused {target.client_id!r} with the "
                        f"password from {target.password_source} ({exc.detail or exc.title}); "
                        f"check --client-id and the password",
                        EXIT_AUTH,
                    ) from None
                raise
        return await _asked_again_while_unavailable(client, args, action, target)


async def _asked_again_while_unavailable(
    client: Any, args: argparse.Namespace, action: Action, target: Target
) -> int:
    """``action``, asked again after its Retry-After while the hub answers 503 with one
    (a cluster node whose store waits for a stream's new leader: a few seconds), at
    most ``UNAVAILABLE_RETRIES`` times."""
    from clients.errors import HubError

    for attempt in range(UNAVAILABLE_RETRIES + 1):
        try:
            return await action(client, args)
        except HubError as exc:
            wait = unavailable_wait(exc.status, exc.problem)
            if wait is not None and attempt < UNAVAILABLE_RETRIES:
                _error(f"{exc}; asking again in {wait} s")
                await asyncio.sleep(wait)  # what the hub asked for
                continue
            if exc.status == 401 and target.token is None and target.password is None:
                raise CommandError(
                    f"not logged in: no credentials were given and "
                    f"{target.admin_password_file or 'admin.password'} cannot be read; give "
                    f"--token TOKEN, or --password-file FILE (the admin's, or with "
                    f"--client-id ID another client's), or set WOTHUB_TOKEN or "
                    f"WOTHUB_PASSWORD_FILE",
                    EXIT_AUTH,
                ) from None
            raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def unavailable_wait(status: int, problem: Any) -> int | None:
    """The seconds to wait before asking again, when the hub answered 503 with a
    ``retryAfter`` (its store waits for a stream's new leader); None otherwise."""
    wait = problem.get("retryAfter") if status == 503 and isinstance(problem, dict) else None
    return min(max(wait, 1), MAX_RETRY_WAIT) if isinstance(wait, int) else None


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


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
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
    group.add_argument(
        "--password-file",
        "--login-password-file",
        dest="login_password_file",
        metavar="FILE",
        help="file whose first line is the password to log in with (env "
        "WOTHUB_PASSWORD_FILE, or the password itself in WOTHUB_PASSWORD; default for "
        "admin: <home>/admin.password; asked for at a terminal)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _subcommands(
    parser: argparse.ArgumentParser,
    specs: list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Action]],
) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help, configure, action in specs:
        sub = actions.add_parser(name, help=help, description=help, allow_abbrev=False)
        configure(sub)
        add_connection_arguments(sub)
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
    raise CommandError(f"a {kind} needs a role; give --role, one of {', '.join(roles)}", EXIT_USAGE)


async def _clients_add(client, args) -> int:
    role = _role_of(args.kind, args.role)
    data: dict[str, Any] = {"clientID": args.id, "kind": args.kind, "role": role}
    if args.display_name:
        data["displayName"] = args.display_name
    password = _new_password(args)
    if password is not None:  # none: a client that logs in with a token or certificate
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
    password = _new_password(args)
    if password is None:
        password = _ask_password(args)
    data = {"clientID": args.id, "password": password}
    changed = await client.invoke_service(CLIENTS_THING, "setPassword", data)
    return _shown(args, changed, _CLIENT_COLUMNS)


def _new_password(args: argparse.Namespace) -> str | None:
    """The new client password from --new-password or --new-password-file, if given."""
    if args.new_password_file is not None:
        source = f"--new-password-file {args.new_password_file}"
        return _read_secret(Path(args.new_password_file), source)
    if args.new_password == "":
        raise CommandError("--new-password is empty; give the new password", EXIT_USAGE)
    return args.new_password


def _ask_password(args: argparse.Namespace) -> str:
    """The new password typed twice at a terminal, or else the first line of stdin."""
    if not sys.stdin.isatty():  # piped in: the first line
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = _prompt(f"new password for {args.id}: ") or ""
        if password and _prompt("again: ") != password:
            raise CommandError(
                "the two passwords typed differ; nothing was changed, run the command again",
                EXIT_USAGE,
            )
    if not password:
        # --password-file used to be the new password here; say what it is now.
        login = " (--password-file is the password to log in with)"
        raise CommandError(
            f"no new password for {args.id!r}: give --new-password-file FILE"
            f"{login if args.login_password_file else ''}, or type it at a terminal, or "
            f"send it on standard input",
            EXIT_USAGE,
        )
    return password


async def _clients_new_token(client, args) -> int:
    token = await client.invoke_service(CLIENTS_THING, "newToken", {"clientID": args.id})
    return _shown(args, token, [("clientID", "ID"), ("expires", "EXPIRES"), ("token", "TOKEN")])


def _configure_clients(parser: argparse.ArgumentParser) -> None:
    def with_id(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("id", metavar="ID", help="the client's id")

    def new_password(sub: argparse.ArgumentParser, what: str) -> None:
        # Not --password-file: that is the login password's file in every command.
        given = sub.add_argument_group("the client's password").add_mutually_exclusive_group()
        given.add_argument(
            "--new-password-file", metavar="FILE", help=f"file whose first line is {what}"
        )
        given.add_argument(
            "--new-password",
            metavar="PASSWORD",
            help="the password itself (visible to other users of this machine; prefer "
            "--new-password-file)",
        )

    def add(sub: argparse.ArgumentParser) -> None:
        with_id(sub)
        sub.add_argument("--kind", required=True, choices=KINDS)
        sub.add_argument(
            "--role", choices=ROLES, help="needed for a consumer; an agent or service has one"
        )
        sub.add_argument("--display-name", metavar="NAME")
        new_password(
            sub,
            "its password (default: none, for a client that logs in with a token or a certificate)",
        )

    def set_role(sub: argparse.ArgumentParser) -> None:
        with_id(sub)
        sub.add_argument("role", metavar="ROLE", choices=ROLES, help=", ".join(ROLES))

    def set_password(sub: argparse.ArgumentParser) -> None:
        with_id(sub)
        new_password(
            sub,
            "the new password (default: asked for at a terminal, or the "
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
        raise CommandError(
            f"cannot read --csr {args.csr}: {exc.strerror or exc}; give the file with the "
            f"client's certificate signing request (PEM)",
            EXIT_USAGE,
        ) from None
    data: dict[str, Any] = {"clientID": args.id, "csr": csr}
    if args.days is not None:
        data["days"] = args.days
    issued = await client.invoke_service(CERTS_THING, "issueCertificate", data)
    if args.out is None:
        print_json(issued)
        return 0
    out = Path(args.out)
    _write(out, issued["certificate"].encode(), 0o644, instead="--out FILE")
    return _shown(args, _summary(issued, certificate=str(out)), _ISSUED_COLUMNS)


async def _certs_generate(client, args) -> int:
    directory = Path(args.out_dir)
    base = _file_name(args.id)
    cert_path, key_path = directory / f"{base}.pem", directory / f"{base}.key"
    ca_path = directory / "ca.pem"
    if key_path.exists():  # checked before the hub makes a key nobody would get
        raise CommandError(
            f"{key_path} already exists and a key is never overwritten; remove it, or give "
            f"another --out-dir DIR",
            EXIT_USAGE,
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(
            f"cannot create --out-dir {directory}: {exc.strerror or exc}; give a directory "
            f"you can write to",
            EXIT_USAGE,
        ) from None
    data: dict[str, Any] = {"clientID": args.id}
    if args.days is not None:
        data["days"] = args.days
    issued = await client.invoke_service(CERTS_THING, "generateCertificate", data)
    instead = "--out-dir DIR"
    _write(key_path, issued["privateKey"].encode(), 0o600, instead=instead, exclusive=True)
    _write(cert_path, issued["certificate"].encode(), 0o644, instead=instead)
    _write(ca_path, issued["caCertificate"].encode(), 0o644, instead=instead)
    summary = _summary(
        issued, certificate=str(cert_path), privateKey=str(key_path), ca=str(ca_path)
    )
    return _shown(args, summary, [*_ISSUED_COLUMNS, ("privateKey", "KEY"), ("ca", "CA")])


def _write(path: Path, data: bytes, mode: int, *, instead: str, exclusive: bool = False) -> None:
    """Write ``path`` with ``mode`` from its first byte (a key is never readable by
    others, not even for a moment); ``instead``: the flag that picks another place."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    try:
        descriptor = os.open(path, flags, mode)
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
    except OSError as exc:
        raise CommandError(
            f"cannot write {path}: {exc.strerror or exc}; give another {instead}", EXIT_REFUSED
        ) from None


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
    print_json(await client.read_thing(args.id))
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


# -- wothub history ----------------------------------------------------------------------

_HISTORY_COLUMNS = {
    False: [("time", "TIME"), ("value", "VALUE")],
    True: [(key, key.upper()) for key in ("time", "count", "min", "max", "mean", "last")],
}


async def _history(client, args) -> int:
    if args.limit < 1:
        raise CommandError("--limit must be at least 1", EXIT_USAGE)
    query = {"from": args.since, "to": args.until, "step": args.step, "order": args.order}
    history = client.history(args.thing, args.name, event=args.event, total=args.limit, **query)
    rows = [item async for item in history]
    columns = _HISTORY_COLUMNS[args.step is not None]
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([key for key, _ in columns])
        for row in rows:
            writer.writerow([_csv_cell(row.get(key)) for key, _ in columns])
        return 0
    if args.json:
        print_json(rows)
        return 0
    print_table(({**row, "value": _csv_cell(row.get("value"))} for row in rows), columns)
    return 0


def _csv_cell(value: Any) -> str:
    """Text as it is, anything else as JSON (so true, null and objects read back)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _configure_history(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("thing", metavar="THING", help="the Thing's id")
    parser.add_argument("name", metavar="NAME", help="the property's (or event's) name")
    parser.add_argument("--event", action="store_true", help="NAME is an event's")
    parser.add_argument(
        "--from", dest="since", metavar="TIME", help="RFC 3339, e.g. 2026-01-31T00:00:00Z"
    )
    parser.add_argument("--to", dest="until", metavar="TIME", help="RFC 3339 (included)")
    parser.add_argument(
        "--step", metavar="DURATION", help="downsample into buckets of 10s, 5m, 1h, 1d, ..."
    )
    parser.add_argument(
        "--limit", type=int, default=100, metavar="N", help="values (or buckets), default 100"
    )
    parser.add_argument(
        "--order", choices=("newest", "oldest"), default="newest", help="default newest"
    )
    parser.add_argument("--csv", action="store_true", help="print CSV")
    add_connection_arguments(parser)
    parser.set_defaults(admin_action=_history)


add_command("clients", "administer the clients that may connect", _configure_clients, _run)
add_command("certs", "client certificates from the hub's CA", _configure_certs, _run)
add_command("things", "the Things in the hub's directory", _configure_things, _run)
add_command("history", "a property's or event's value history", _configure_history, _run)
