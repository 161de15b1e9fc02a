"""``wothub cluster join-token`` and ``wothub cluster join`` (docs/cluster.md, "Joining a
node"; the endpoints are in hub/cluster_join.py).

``join-token`` asks a running node for a one-time join token, as an administrator, the
way the admin commands connect and log in (hub/admin_cli.py), and prints it with the CA
fingerprint a joining node needs.

``join URL --token T --ca-fingerprint F`` runs on the new node. It fetches the CA
certificate from ``URL`` (``GET /cluster/ca``) and compares its fingerprint with ``F``.
Only when they match does it connect again, verifying the server against that CA and
its host name, and only on that connection does the token go out (``POST
/cluster/join``). The secrets that come back are installed into the home
(``install_secrets``). Exit codes as the admin commands': 3 when the hub cannot be
reached or is not the cluster's, 4 when the token is refused.

``nats-config`` prints what each server of a NATS cluster that someone else runs needs
for the hubs (docs/cluster.md, "On a NATS cluster you run"): the accounts and the auth
callout of the home's NATS keys. It makes the cluster's secrets in a home without them.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import http.client
import json
import os
import re
import socket
import ssl
import sys
import time
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .admin_cli import (
    EXIT_AUTH,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    UNAVAILABLE_RETRIES,
    CommandError,
    add_connection_arguments,
    check_url,
    print_json,
    print_table,
    run_action,
    unavailable_wait,
)
from .cluster_join import CA_PATH, JOIN_PATH, JOIN_TOKEN_PATH
from .cluster_secrets import (
    SECRET_FILES,
    ClusterSecretsError,
    ca_fingerprint,
    install_secrets,
    make_secrets,
)
from .cluster_status import STATUS_PATH
from .commands import add_command
from .config import default_home

_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_TIMEOUT = 30.0


# -- wothub cluster join-token -------------------------------------------------------------


async def _join_token(client: Any, args: argparse.Namespace) -> int:
    body = {} if args.ttl is None else {"ttl": args.ttl}
    answer = (await client._send("POST", client._url(JOIN_TOKEN_PATH), json=body)).data
    if args.json:
        print_json(answer)
        return 0
    print(f"join token (works once, until {answer['expires']}):\n  {answer['token']}")
    print(f"CA fingerprint:\n  {answer['caFingerprint']}")
    print(
        f"on the new node, with an empty home, run:\n  wothub cluster join {answer['url']} "
        f"--token {answer['token']} --ca-fingerprint {answer['caFingerprint']}"
    )
    return 0


def _duration(text: str) -> int:
    """Seconds from ``90``, ``90s``, ``30m``, ``2h`` or ``1d``."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: give 90s, 30m, 2h or 1d")
    return int(match[1]) * _UNITS[match[2]]


# -- wothub cluster status -----------------------------------------------------------------


async def _status(client: Any, args: argparse.Namespace) -> int:
    report = (await client._send("GET", client._url(STATUS_PATH))).data
    if args.json:
        print_json(report)
        return 0
    if report["cluster"] is None:
        print("not a cluster node: this hub runs alone (see docs/cluster.md)")
        print(f"store: {report['store'].get('backend')}")
        return 0
    print(f"cluster {report['cluster']}, asked node {report['node']}\n")
    print_table(
        report["nodes"],
        [
            ("node", "NODE"),
            ("alive", "ALIVE"),
            ("url", "URL"),
            ("agents", "AGENTS"),
            ("connections", "CONNECTIONS"),
            ("renewed", "LEASE RENEWED"),
        ],
    )
    agents = [
        {"agent": agent, "nodes": ", ".join(nodes)} for agent, nodes in report["agents"].items()
    ]
    print()
    print_table(agents, [("agent", "AGENT"), ("nodes", "CONNECTED TO")])
    print_store(report["store"])
    return 0


def print_store(store: dict[str, Any]) -> None:
    """The store's part of the status: a line per bucket, with its replicas, or why its
    stream did not answer."""
    print(f"\nstore: {store.get('backend')}, connected to {store.get('connected')}")
    if "error" in store:
        print(f"  cannot read the buckets' state: {store['error']}")
    rows = [_bucket_row(bucket) for bucket in store.get("buckets", [])]
    print_table(
        rows,
        [
            ("bucket", "BUCKET"),
            ("replicas", "REPLICAS"),
            ("leader", "LEADER"),
            ("current", "OTHER REPLICAS"),
            ("keys", "KEYS"),
        ],
    )


def _bucket_row(bucket: dict[str, Any]) -> dict[str, Any]:
    if "error" in bucket:  # its stream did not answer (electing a leader, say)
        return {**bucket, "current": f"no answer: {bucket['error']}"}
    return {**bucket, "current": ", ".join(_peer(peer) for peer in bucket["peers"])}


def _peer(peer: dict[str, Any]) -> str:
    state = " (offline)" if peer["offline"] else "" if peer["current"] else " (behind)"
    return f"{peer['name']}{state}"


# -- wothub cluster join -------------------------------------------------------------------


def _join(args: argparse.Namespace) -> int:
    try:
        return _join_cluster(args)
    except CommandError as exc:
        print(f"wothub: {exc}", file=sys.stderr)
        return exc.code


def _join_cluster(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/")
    check_url(url, url)
    fingerprint = args.ca_fingerprint.strip().lower()
    if not _FINGERPRINT.match(fingerprint):
        raise CommandError(
            f"--ca-fingerprint {args.ca_fingerprint} is not a CA fingerprint; give the "
            f"sha256:... that `wothub cluster join-token` printed",
            EXIT_USAGE,
        )
    token = args.token or os.environ.get("WOTHUB_JOIN_TOKEN")
    if not token:
        raise CommandError(
            "no join token: give --token TOKEN (or WOTHUB_JOIN_TOKEN), from "
            "`wothub cluster join-token` on a node of the cluster",
            EXIT_USAGE,
        )
    home = args.home if args.home is not None else default_home()
    _check_home(home, fingerprint)

    # 1. The CA, over a connection that verifies nothing: nothing secret is sent on it.
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    status, body = _request(url, unverified, "GET", CA_PATH)
    if status != 200:
        raise CommandError(
            f"the hub at {url} did not give its CA certificate ({CA_PATH} answered "
            f"{status}); check that URL is a wothub node of the cluster",
            EXIT_UNREACHABLE,
        )
    try:
        # Only the first certificate: one more in the answer must not become trusted.
        ca_pem = x509.load_pem_x509_certificate(body).public_bytes(serialization.Encoding.PEM)
    except ValueError:
        raise CommandError(
            f"{url}{CA_PATH} is not a CA certificate; check that URL is a wothub node",
            EXIT_UNREACHABLE,
        ) from None
    found = ca_fingerprint(ca_pem)
    if not hmac.compare_digest(found, fingerprint):
        raise CommandError(
            f"the hub at {url} is not the cluster's: its CA fingerprint is {found}, not "
            f"{fingerprint}; the join token was not sent. Check the URL and "
            f"--ca-fingerprint (`wothub cluster join-token` prints both)",
            EXIT_UNREACHABLE,
        )

    # 2. The token, only to a server that this CA vouches for, under the URL's name.
    verified = ssl.create_default_context(cadata=ca_pem.decode())
    authorization = {"Authorization": f"Bearer {token}"}
    status, body = _request(url, verified, "POST", JOIN_PATH, authorization)
    for _ in range(UNAVAILABLE_RETRIES):  # a 503 with Retry-After: as the admin commands
        wait = _retry_after(status, body)
        if wait is None:
            break
        print(f"wothub: the hub answered 503; asking again in {wait} s", file=sys.stderr)
        time.sleep(wait)  # what the hub asked for
        status, body = _request(url, verified, "POST", JOIN_PATH, authorization)
    if status != 200:
        _refused(url, status, body)
    try:
        bundle = json.loads(body)["secrets"]
        same_ca = base64.b64decode(bundle["certs/ca.pem"], validate=True) == ca_pem
    except (ValueError, KeyError, TypeError, binascii.Error):
        same_ca = False
    if not same_ca:
        raise CommandError(
            f"the hub at {url} answered the join with something other than the cluster's "
            f"secrets; nothing was installed",
            EXIT_REFUSED,
        )
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        written = install_secrets(home, bundle)
    except ClusterSecretsError as exc:
        raise CommandError(f"nothing was installed: {exc}", EXIT_REFUSED) from None
    print(
        f"joined the cluster of {url}: installed {', '.join(written) or 'nothing new'} in "
        f"{home}; start this node with `wothub serve --home {home}` and the cluster "
        f"options (docs/cluster.md)"
    )
    return 0


def _check_home(home: Path, fingerprint: str) -> None:
    """Refuse, before the token is spent, a home with secrets of another CA."""
    if not any((home / name).exists() for name in SECRET_FILES):
        return
    try:
        own = ca_fingerprint((home / "certs" / "ca.pem").read_bytes())
    except (OSError, ValueError):
        own = None
    if own != fingerprint:
        raise CommandError(
            f"{home} already has secrets of its own (a CA or keys, not the cluster's); "
            f"a node joins with a fresh home: give another --home DIR; the join token was "
            f"not sent",
            EXIT_USAGE,
        )


def _request(
    url: str, context: ssl.SSLContext, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One HTTPS request; the TLS handshake (with its checks) is done before anything
    is sent."""
    parts = urlsplit(url)
    assert parts.hostname is not None  # check_url
    connection = http.client.HTTPSConnection(
        parts.hostname, parts.port or 443, timeout=_TIMEOUT, context=context
    )
    try:
        try:
            connection.connect()
        except ssl.SSLCertVerificationError as exc:
            raise CommandError(
                f"the hub at {url} has the cluster's CA, but its server certificate does "
                f"not verify against it ({exc.verify_message}); the join token was not "
                f"sent. Use an address that the server certificate names (server_names)",
                EXIT_UNREACHABLE,
            ) from None
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            if isinstance(exc, socket.gaierror):
                reason = f"cannot resolve its host name ({exc.strerror})"
            raise CommandError(
                f"cannot reach the hub at {url}: {reason}; check the URL, and that "
                f"`wothub serve` is running there",
                EXIT_UNREACHABLE,
            ) from None
        connection.request(method, urlsplit(url).path + path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise CommandError(
            f"no answer from the hub at {url} ({exc}); check that `wothub serve` runs there",
            EXIT_UNREACHABLE,
        ) from None
    finally:
        connection.close()


def _retry_after(status: int, body: bytes) -> int | None:
    """``unavailable_wait`` of a raw answer (the join's own HTTPS client)."""
    try:
        problem = json.loads(body) if status == 503 else None
    except ValueError:
        return None
    return unavailable_wait(status, problem)


def _refused(url: str, status: int, body: bytes) -> NoReturn:
    try:
        problem = json.loads(body)
        detail = problem.get("detail") or problem.get("title")
    except (ValueError, AttributeError):
        detail = None
    detail = detail or f"HTTP {status}"
    if status in (401, 403, 429):
        raise CommandError(f"the hub at {url} refused the join token: {detail}", EXIT_AUTH)
    raise CommandError(f"the hub at {url} answered the join with {status}: {detail}", EXIT_REFUSED)


def _nats_config(args: argparse.Namespace) -> int:
    """Print the accounts, system_account and authorization (auth callout) blocks of the
    home's NATS keys: what each server of a NATS cluster you run adds to its
    configuration for the hubs (docs/cluster.md, "On a NATS cluster you run"). A home
    without the cluster's secrets gets them made first, as a first start would."""
    from bindings.nats.server import NatsKeys  # here: the other actions do not need it

    home = args.home if args.home is not None else default_home()
    try:
        made = make_secrets(home)
        keys = NatsKeys.load_or_create(home / "nats")
    except (OSError, ValueError, KeyError) as exc:  # a home that cannot be written, a bad file
        print(
            f"wothub: cannot read or make the cluster's secrets in {home}: {exc}", file=sys.stderr
        )
        return EXIT_REFUSED
    if made:
        print(f"wothub: made the cluster's secrets in {home}: {', '.join(made)}", file=sys.stderr)
    print(f"# wothub hubs: the accounts and auth callout of {home} (docs/cluster.md)")
    print(keys.auth_config(), end="")
    return 0


# -- the command ---------------------------------------------------------------------------


def _configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    help = "a one-time token for a new node to join the cluster (administrators only)"
    token = actions.add_parser("join-token", help=help, description=help, allow_abbrev=False)
    token.add_argument(
        "--ttl",
        type=_duration,
        metavar="DURATION",
        help="how long the token is valid: 90s, 30m, 2h or 1d (default 1h, at most 7d)",
    )
    add_connection_arguments(token)
    token.set_defaults(cluster_run=lambda args: run_action(args, _join_token))

    help = "the cluster as a node sees it: nodes, where agents are, the store's replicas"
    status = actions.add_parser("status", help=help, description=help, allow_abbrev=False)
    add_connection_arguments(status)
    status.set_defaults(cluster_run=lambda args: run_action(args, _status))

    help = "join this node to a cluster: install the cluster's secrets into its home"
    join = actions.add_parser("join", help=help, description=help, allow_abbrev=False)
    join.add_argument("url", metavar="URL", help="a node of the cluster: https://HOST:PORT")
    join.add_argument("--token", metavar="TOKEN", help="the join token (env WOTHUB_JOIN_TOKEN)")
    join.add_argument(
        "--ca-fingerprint",
        required=True,
        metavar="FINGERPRINT",
        help="the cluster's CA fingerprint, sha256:... (printed with the token)",
    )
    join.add_argument(
        "--home",
        type=Path,
        metavar="DIR",
        help="this node's home, empty or missing (env WOTHUB_HOME; default "
        "$XDG_DATA_HOME/wothub or ~/.local/share/wothub)",
    )
    join.set_defaults(cluster_run=_join)

    help = "the blocks each server of a NATS cluster you run needs for the hubs"
    nats_config = actions.add_parser("nats-config", help=help, description=help)
    nats_config.add_argument(
        "--home",
        type=Path,
        metavar="DIR",
        help="a home with the cluster's secrets (env WOTHUB_HOME; default "
        "$XDG_DATA_HOME/wothub or ~/.local/share/wothub)",
    )
    nats_config.set_defaults(cluster_run=_nats_config)


add_command(
    "cluster",
    "cluster mode: status, join tokens, joining a node, a NATS cluster's configuration",
    _configure,
    lambda a: a.cluster_run(a),
)
