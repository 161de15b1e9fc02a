"""Hub configuration: where the hub keeps its data, what it listens on, and its limits.

Each option comes from, in order of precedence: a command-line flag, an environment
variable, the TOML file ``<home>/wothub.toml`` (or the file ``--config`` names), and
the default here. The file is checked strictly: an unknown key or a value of the wrong
type is a ``ConfigError`` naming the file and the key, never ignored. docs/configuration.md
lists every option.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from auth.roles import KIND_ROLES
from bindings.common.hosts import LOOPBACK
from bucketstore import DEFAULT_BACKEND, backend_names

from .event_loop import EVENT_LOOPS

if TYPE_CHECKING:
    from auth.service import AuthConfig
    from core.limits import Limits
    from digitwin.history import HistoryConfig

CONFIG_FILE_NAME = "wothub.toml"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
MQTT_CLIENT_CERTIFICATE = ("off", "require")
CLIENT_KINDS = tuple(KIND_ROLES)  # consumer, agent, service


class ConfigError(ValueError):
    """A configuration value that cannot be used. ``source`` is the file path, ``"environment"``
    or ``"command line"``; ``key`` the dotted TOML key, variable or flag (None when the whole
    source is unusable, e.g. a TOML syntax error)."""

    def __init__(self, message: str, *, source: str, key: str | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.key = key


def default_home(env: Mapping[str, str] | None = None) -> Path:
    """``$WOTHUB_HOME``, else ``$XDG_DATA_HOME/wothub``, else ``~/.local/share/wothub``."""
    env = os.environ if env is None else env
    if home := env.get("WOTHUB_HOME"):
        return Path(home)
    data = env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "wothub"


@dataclass(frozen=True)
class Config:
    home: Path
    store_backend: str = DEFAULT_BACKEND
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one JSON object per line (hub/logs.py)
    event_loop: str = "auto"  # uvloop where installed, or "uvloop" / "asyncio" (hub/event_loop.py)
    server_names: tuple[str, ...] = ()  # extra DNS names / addresses for the server cert
    # The address every listener binds unless it has its own (http_host, mqtt_host,
    # nats_host). Loopback by default, as mosquitto 2 does: a fresh hub is reachable from
    # this machine only until someone decides to open it ("0.0.0.0": every interface,
    # TLS and authentication on every listener). Port 0 picks a free port.
    host: str = "127.0.0.1"
    http_host: str | None = None
    http_port: int = 8444
    public_url: str | None = None  # base URL in TD forms; None: from host name and port
    max_body_bytes: int = 1_048_576
    sync_wait: float = 2.0  # seconds a write waits for the device before answering 202
    # Seconds an invokeaction without Prefer (a client that expects the output) waits for
    # the device before answering 504 (docs/http.md).
    action_timeout: float = 60.0
    # Connections (docs/operations.md, "Connections"): seconds a request has to arrive in
    # full, seconds an idle keep-alive connection is kept, connections served at once.
    http_read_timeout: float = 10.0
    http_keep_alive_timeout: float = 5.0
    http_max_connections: int = 1000
    # MQTT: the managed nats-server's MQTT listener, TLS; plain MQTT instead only when
    # plain_port is set, and then on loopback only (nats-server has one MQTT listener).
    # mqtt_client_certificate: "off" (never asked) or "require" (on every MQTT login).
    mqtt_enabled: bool = True
    mqtt_host: str | None = None
    mqtt_port: int = 8883
    mqtt_plain_port: int | None = None
    mqtt_client_certificate: str = "off"
    # Kept for old configuration files; nats_auth_timeout and nats_max_connections
    # apply to MQTT connections now (one server).
    mqtt_connect_timeout: float = 10.0
    mqtt_max_connections: int = 1000
    # NATS: a managed nats-server; nats_url instead connects to an existing server
    # (external mode). nats_ws_port: the WebSocket listener that takes client
    # certificates (0 picks a free port).
    nats_enabled: bool = True
    nats_host: str | None = None
    nats_port: int = 4222
    nats_ws_port: int = 4223
    nats_url: str | None = None
    nats_auth_timeout: float = 10.0  # from connecting to a finished login
    nats_max_connections: int = 1000  # clients of the managed nats-server, at once
    # Cluster mode (docs/cluster.md): on when cluster_node is set. The node's nats-server
    # joins the cluster (its route listener on cluster_host:cluster_port, routes to the
    # other nodes), and the store is JetStream on it instead of LevelDB. cluster_replicas
    # None: as many as the nodes this one knows (itself and its routes), at most 3.
    cluster_node: str | None = None
    cluster_name: str = "wothub"
    cluster_host: str | None = None
    cluster_port: int = 6222
    cluster_routes: tuple[str, ...] = ()
    cluster_replicas: int | None = None
    cluster_wait: float = 60.0  # seconds a starting node waits for the cluster's JetStream
    # Hub processes on this machine (docs/cluster.md, "Workers"): more than 1 runs them
    # on one nats-server, each client's messages partitioned to one of them, the store on
    # that server's JetStream. ``worker``: set by the parent for each of them (1 to
    # workers; 0 in the parent or a single hub), never by a file or a flag.
    workers: int = 1
    worker: int = 0
    # Per client kind (consumer, agent, service), seconds; None or a missing kind: the
    # auth package's default. login_throttle: ThrottleConfig fields that are set.
    token_lifetime: dict[str, float] | None = None
    session_lifetime: dict[str, float] | None = None
    refresh_grace: dict[str, float] | None = None
    login_throttle: dict[str, int | float] | None = None
    # Password checks: threads (0: one per core but one), how many may wait for one
    # before more are refused (503), seconds a successful check is remembered (0: never).
    hash_workers: int = 0
    hash_queue: int = 8
    verified_ttl: float = 900.0
    password_hash: dict[str, int] | None = None  # HashCost fields that are set
    flush_interval: float = 1.0  # router write-behind, seconds
    notification_log_size: int = 10_000
    # GET /metrics without credentials; otherwise an administrator's, from loopback
    # too (a reverse proxy on the same host would make loopback public).
    metrics_public: bool = False
    # [limits]: each refusal names its limit (core/limits.py, docs/operations.md).
    max_td_bytes: int = 1_048_576  # as large as a request body may be
    max_value_bytes: int = 65_536
    max_things_per_agent: int = 1000
    max_queued_actions: int = 1000  # open actions and writes per Thing
    max_requests_per_second: float = 1000.0  # per client (token bucket)
    request_burst: int | None = None  # the bucket's size; None: 2 seconds' worth
    max_connections_per_client: int = 100
    # [history] (docs/history.md): every reported value kept, for max_age seconds (0: no
    # limit) and at most max_count values per property or event (0: no limit).
    history_enabled: bool = True
    history_max_age: float = 30 * 86400.0
    history_max_count: int = 0
    history_things: tuple[dict[str, Any], ...] = ()  # [[history.things]] tables, checked
    config_file: Path | None = None  # the file the values were read from, if any

    def __post_init__(self) -> None:
        for listener in ("http_host", "mqtt_host", "nats_host", "cluster_host"):
            if getattr(self, listener) is None:  # not set: ``host``
                object.__setattr__(self, listener, self.host)
        if self.cluster_node is not None and not (self.nats_enabled or self.mqtt_enabled):
            raise ConfigError(
                "cluster mode runs on nats-server: [cluster] node needs [nats] enabled",
                source="configuration",
                key="cluster.node",
            )
        if self.workers > 1 and not self.worker and (self.nats_url or not self.nats_enabled):
            raise ConfigError(
                "workers share the hub's own nats-server: workers > 1 needs [nats] enabled "
                "and no [nats] url",
                source="configuration",
                key="workers",
            )
        if self.workers > 1 and not self.worker and self.cluster_node is not None:
            # docs/cluster.md, "Workers on one machine": across routes a queue group has
            # no preference for the local server, so the partitions would mix.
            raise ConfigError(
                "workers > 1 on a cluster node is not supported yet (docs/cluster.md)",
                source="configuration",
                key="workers",
            )
        if self.cluster_node is not None and not self.cluster_routes and self.nats_url is None:
            raise ConfigError(
                "a cluster node needs the route addresses of the other nodes ([cluster] "
                "routes, --route HOST:PORT): nats-server runs JetStream in a cluster only "
                "with routes. Start the nodes together, each with the others' routes "
                "(docs/cluster.md)",
                source="configuration",
                key="cluster.routes",
            )

    @property
    def cluster_mode(self) -> bool:
        return self.cluster_node is not None

    @property
    def replicas(self) -> int:
        """Replicas of each JetStream bucket a cluster node creates."""
        if self.cluster_replicas is not None:
            return self.cluster_replicas
        return min(3, 1 + len(self.cluster_routes))

    @property
    def store_name(self) -> str:
        """The store backend in use: JetStream in cluster mode and with workers."""
        return "jetstream" if self.cluster_mode or self.workers > 1 else self.store_backend

    @property
    def only_loopback(self) -> bool:
        """Whether no listener can be reached from another machine."""
        hosts = (self.http_host, self.mqtt_host, self.nats_host)
        if self.cluster_mode:
            hosts = (*hosts, self.cluster_host)
        return all(host in LOOPBACK for host in hosts)

    @property
    def store_path(self) -> Path:
        return self.home / "store"

    def limits(self) -> Limits:
        from core.limits import Limits

        return Limits(
            max_td_bytes=self.max_td_bytes,
            max_value_bytes=self.max_value_bytes,
            max_things_per_agent=self.max_things_per_agent,
            max_queued_actions=self.max_queued_actions,
            max_requests_per_second=self.max_requests_per_second,
            request_burst=self.request_burst,
            max_connections_per_client=self.max_connections_per_client,
        )

    def history_config(self) -> HistoryConfig:
        from digitwin.history import HistoryConfig, Retention, ThingHistory

        things = {
            entry["id"]: ThingHistory(
                enabled=entry.get("enabled"),
                off_properties=frozenset(entry.get("off_properties", ())),
                off_events=frozenset(entry.get("off_events", ())),
                max_age=entry.get("max_age"),
                max_count=entry.get("max_count"),
            )
            for entry in self.history_things
        }
        retention = Retention(self.history_max_age, self.history_max_count)
        # A cluster node notes its limits at each start (docs/history.md, "Cluster mode").
        limits_file = None
        if self.cluster_node is not None:
            limits_file = self.home / f"history-limits-{self.cluster_node}.json"
        return HistoryConfig(self.history_enabled, retention, things, limits_file=limits_file)

    def auth_config(self) -> AuthConfig:
        """The auth package's defaults, with what this configuration sets."""
        from auth.service import AuthConfig

        base = AuthConfig()
        return dataclasses.replace(
            base,
            token_lifetime={**base.token_lifetime, **(self.token_lifetime or {})},
            session_lifetime={**base.session_lifetime, **(self.session_lifetime or {})},
            refresh_grace={**base.refresh_grace, **(self.refresh_grace or {})},
            throttle=dataclasses.replace(base.throttle, **(self.login_throttle or {})),
            hash_cost=dataclasses.replace(base.hash_cost, **(self.password_hash or {})),
            hash_workers=self.hash_workers,
            hash_queue=self.hash_queue,
            verified_ttl=self.verified_ttl,
        )


# -- kinds of value -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    expected: str | Callable[[], str]  # "a port number ...", for messages
    check: Callable[[Any], Any]  # typed value -> value to keep; raises ValueError/TypeError
    parse: Callable[[str], Any] = str  # text of a variable or flag -> typed value

    def describe(self) -> str:
        return self.expected if isinstance(self.expected, str) else self.expected()


def _type_name(value: Any) -> str:
    for types, name in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "float"),
        (str, "string"),
        ((list, tuple), "array"),
        (dict, "table"),
        ((datetime, date, time), "date-time"),
    ):
        if isinstance(value, types):
            return name
    return type(value).__name__


def _shown(value: Any, from_text: bool) -> str:
    if from_text:
        return repr(value)
    if isinstance(value, dict | list):
        return _type_name(value)
    text = repr(value)
    return f"{_type_name(value)} {text if len(text) <= 60 else text[:57] + '...'}"


def _convert(kind: _Kind, value: Any, from_text: bool) -> Any:
    """The value to keep, or ValueError with a message saying what was expected."""
    try:
        return kind.check(kind.parse(value) if from_text else value)
    except (TypeError, ValueError):
        raise ValueError(f"expected {kind.describe()}, got {_shown(value, from_text)}") from None


def _integer(low: int, high: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(value)
        if value < low or (high is not None and value > high):
            raise ValueError(value)
        return value

    return check


def _seconds(low: float, *, inclusive: bool) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(value)
        value = float(value)
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            raise ValueError(value)
        return value

    return check


def _word(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    if not value or value != value.strip() or any(c.isspace() for c in value):
        raise ValueError(value)
    return value


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _node_name(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    if not _NAME.fullmatch(value):
        raise ValueError(value)
    return value


def _routes(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise TypeError(value)
    routes = []
    for route in value:
        host, _, port = _word(route).rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(route)
        routes.append(route)
    return tuple(routes)


def _log_level(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in LOG_LEVELS:
        raise ValueError(value)
    return value.upper()


def _log_format(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in LOG_FORMATS:
        raise ValueError(value)
    return value.lower()


def _event_loop(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in EVENT_LOOPS:
        raise ValueError(value)
    return value.lower()


def _client_certificate(value: Any) -> str:
    if value not in MQTT_CLIENT_CERTIFICATE:
        raise ValueError(value)
    return str(value)


def _backend(value: Any) -> str:
    if not isinstance(value, str) or value not in backend_names():
        raise ValueError(value)
    return value


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise TypeError(value)
    return tuple(_word(name) for name in value)


def _split_names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _url(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    parts = urlsplit(value)
    _ = parts.port  # raises ValueError for a port that is not a number or out of range
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(value)
    if parts.query or parts.fragment or any(c.isspace() for c in value):
        raise ValueError(value)
    return value.rstrip("/")


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(value)
    return value


def _parse_boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _nats_url(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    parts = urlsplit(value)
    if parts.scheme not in ("nats", "tls") or not parts.hostname:
        raise ValueError(value)
    return value


_PORT = _Kind("a port number from 0 to 65535 (0: any free port)", _integer(0, 65535), int)
_HOST = _Kind("a host name or IP address", _word)
_URL = _Kind("an http:// or https:// URL with a host and no query, like https://hub.lan:8444", _url)
_LOG_LEVEL = _Kind(f"one of {', '.join(LOG_LEVELS)}", _log_level)
_CLIENT_CERTIFICATE = _Kind(f"one of {', '.join(MQTT_CLIENT_CERTIFICATE)}", _client_certificate)
_LOG_FORMAT = _Kind(f"one of {', '.join(LOG_FORMATS)}", _log_format)
_EVENT_LOOP = _Kind(f"one of {', '.join(EVENT_LOOPS)}", _event_loop)
_RATE = _Kind("a number of requests a second, more than 0", _seconds(0, inclusive=False), float)
_BACKEND = _Kind(lambda: f"a store backend, one of {', '.join(backend_names())}", _backend)
_NAMES = _Kind("a list of host names or addresses", _names, _split_names)
_BYTES = _Kind("a whole number of bytes, at least 1", _integer(1), int)
_COUNT = _Kind("a whole number, at least 1", _integer(1), int)
_COUNT_OR_ZERO = _Kind("a whole number, 0 or more", _integer(0), int)
_WAIT = _Kind("a number of seconds, 0 or more", _seconds(0, inclusive=True), float)
_INTERVAL = _Kind("a number of seconds, more than 0", _seconds(0, inclusive=False), float)
_LIFETIME = _INTERVAL
_BOOL = _Kind("true or false", _boolean, _parse_boolean)
_NATS_URL = _Kind("a nats:// or tls:// URL, like tls://nats.lan:4222", _nats_url)
_NODE_NAME = _Kind("a name of letters, digits, '-' and '_' (at most 64)", _node_name)
_ROUTES = _Kind("a list of host:port route addresses of other nodes", _routes, _split_names)
_REPLICAS = _Kind("a number of replicas from 1 to 5", _integer(1, 5), int)
_WORKERS = _Kind("a number of hub processes from 1 to 64", _integer(1, 64), int)


def _history_things(value: Any) -> tuple[dict[str, Any], ...]:
    """[[history.things]]: each a table with an ``id`` and settings of its own."""
    if not isinstance(value, list | tuple):
        raise TypeError(value)
    checks: dict[str, Callable[[Any], Any]] = {
        "id": _word,
        "enabled": _boolean,
        "off_properties": _affordance_names,
        "off_events": _affordance_names,
        "max_age": _seconds(0, inclusive=True),
        "max_count": _integer(0),
    }
    things = []
    for entry in value:
        if not isinstance(entry, dict) or "id" not in entry or not set(entry) <= set(checks):
            raise ValueError(entry)
        things.append({key: checks[key](item) for key, item in entry.items()})
    if len({entry["id"] for entry in things}) < len(things):
        raise ValueError(value)  # one table per Thing
    return tuple(things)


def _affordance_names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(n, str) and n for n in value):
        raise TypeError(value)
    return tuple(value)


_HISTORY_THINGS = _Kind(
    "tables with an id (one per Thing) and any of enabled, off_properties, off_events, "
    "max_age, max_count",
    _history_things,
)


# -- where each option is written -------------------------------------------------------


@dataclass(frozen=True)
class _Value:
    """A TOML key holding one option (``field`` of Config), or one entry of a _Group."""

    kind: _Kind
    field: str | None = None


@dataclass(frozen=True)
class _Group:
    """A TOML table whose entries together are one dict-valued option."""

    field: str
    entries: dict[str, _Value]


_Schema = dict[str, "_Value | _Group | _Schema"]

_LIFETIMES = {kind: _Value(_LIFETIME) for kind in CLIENT_KINDS}
_SCHEMA: _Schema = {
    "log_level": _Value(_LOG_LEVEL, "log_level"),
    "log_format": _Value(_LOG_FORMAT, "log_format"),
    "event_loop": _Value(_EVENT_LOOP, "event_loop"),
    "store": _Value(_BACKEND, "store_backend"),
    "server_names": _Value(_NAMES, "server_names"),
    "host": _Value(_HOST, "host"),
    "workers": _Value(_WORKERS, "workers"),
    "http": {
        "host": _Value(_HOST, "http_host"),
        "port": _Value(_PORT, "http_port"),
        "public_url": _Value(_URL, "public_url"),
        "max_body_bytes": _Value(_BYTES, "max_body_bytes"),
        "sync_wait": _Value(_WAIT, "sync_wait"),
        "action_timeout": _Value(_WAIT, "action_timeout"),
        "read_timeout": _Value(_INTERVAL, "http_read_timeout"),
        "keep_alive_timeout": _Value(_INTERVAL, "http_keep_alive_timeout"),
        "max_connections": _Value(_COUNT, "http_max_connections"),
    },
    "mqtt": {
        "enabled": _Value(_BOOL, "mqtt_enabled"),
        "host": _Value(_HOST, "mqtt_host"),
        "port": _Value(_PORT, "mqtt_port"),
        "plain_port": _Value(_PORT, "mqtt_plain_port"),
        "client_certificate": _Value(_CLIENT_CERTIFICATE, "mqtt_client_certificate"),
        "connect_timeout": _Value(_INTERVAL, "mqtt_connect_timeout"),
        "max_connections": _Value(_COUNT, "mqtt_max_connections"),
    },
    "nats": {
        "enabled": _Value(_BOOL, "nats_enabled"),
        "host": _Value(_HOST, "nats_host"),
        "port": _Value(_PORT, "nats_port"),
        "ws_port": _Value(_PORT, "nats_ws_port"),
        "url": _Value(_NATS_URL, "nats_url"),
        "auth_timeout": _Value(_INTERVAL, "nats_auth_timeout"),
        "max_connections": _Value(_COUNT, "nats_max_connections"),
    },
    "cluster": {
        "node": _Value(_NODE_NAME, "cluster_node"),
        "name": _Value(_NODE_NAME, "cluster_name"),
        "host": _Value(_HOST, "cluster_host"),
        "port": _Value(_PORT, "cluster_port"),
        "routes": _Value(_ROUTES, "cluster_routes"),
        "replicas": _Value(_REPLICAS, "cluster_replicas"),
        "wait": _Value(_INTERVAL, "cluster_wait"),
    },
    "auth": {
        "token_lifetime": _Group("token_lifetime", _LIFETIMES),
        "session_lifetime": _Group("session_lifetime", _LIFETIMES),
        "refresh_grace": _Group("refresh_grace", {k: _Value(_WAIT) for k in CLIENT_KINDS}),
        "hash_workers": _Value(_COUNT_OR_ZERO, "hash_workers"),
        "hash_queue": _Value(_COUNT_OR_ZERO, "hash_queue"),
        "verified_ttl": _Value(_WAIT, "verified_ttl"),
        # The fields of auth.passwords.HashCost: argon2id's cost for new hashes.
        "password_hash": _Group(
            "password_hash",
            {
                "time_cost": _Value(_COUNT),
                "memory_kib": _Value(_Kind("a whole number, at least 8", _integer(8), int)),
                "parallelism": _Value(_COUNT),
            },
        ),
        # The fields of auth.throttle.ThrottleConfig (a test keeps them in step).
        "login_throttle": _Group(
            "login_throttle",
            {
                "source_free": _Value(_COUNT_OR_ZERO),
                "source_base_delay": _Value(_WAIT),
                "source_max_delay": _Value(_WAIT),
                "account_free": _Value(_COUNT_OR_ZERO),
                "account_base_delay": _Value(_WAIT),
                "account_max_delay": _Value(_WAIT),
                "source_concurrent": _Value(_COUNT),
                "forget_after": _Value(_INTERVAL),
                "max_tracked": _Value(_COUNT),
            },
        ),
    },
    "router": {
        "flush_interval": _Value(_INTERVAL, "flush_interval"),
        "notification_log_size": _Value(_COUNT, "notification_log_size"),
    },
    "metrics": {
        "public": _Value(_BOOL, "metrics_public"),
    },
    "history": {
        "enabled": _Value(_BOOL, "history_enabled"),
        "max_age": _Value(_WAIT, "history_max_age"),
        "max_count": _Value(_COUNT_OR_ZERO, "history_max_count"),
        "things": _Value(_HISTORY_THINGS, "history_things"),
    },
    "limits": {
        "max_td_bytes": _Value(_BYTES, "max_td_bytes"),
        "max_value_bytes": _Value(_BYTES, "max_value_bytes"),
        "max_things_per_agent": _Value(_COUNT, "max_things_per_agent"),
        "max_queued_actions": _Value(_COUNT, "max_queued_actions"),
        "max_requests_per_second": _Value(_RATE, "max_requests_per_second"),
        "request_burst": _Value(_COUNT, "request_burst"),
        "max_connections_per_client": _Value(_COUNT, "max_connections_per_client"),
    },
}

ENV_VARS: dict[str, str] = {  # variable -> Config field (WOTHUB_HOME: the home itself)
    "WOTHUB_STORE": "store_backend",
    "WOTHUB_LOG_LEVEL": "log_level",
    "WOTHUB_LOG_FORMAT": "log_format",
    "WOTHUB_EVENT_LOOP": "event_loop",
    "WOTHUB_SERVER_NAMES": "server_names",
    "WOTHUB_HOST": "host",
    "WOTHUB_HTTP_HOST": "http_host",
    "WOTHUB_HTTP_PORT": "http_port",
    "WOTHUB_PUBLIC_URL": "public_url",
    "WOTHUB_MQTT_ENABLED": "mqtt_enabled",
    "WOTHUB_MQTT_HOST": "mqtt_host",
    "WOTHUB_MQTT_PORT": "mqtt_port",
    "WOTHUB_MQTT_PLAIN_PORT": "mqtt_plain_port",
    "WOTHUB_MQTT_CLIENT_CERTIFICATE": "mqtt_client_certificate",
    "WOTHUB_NATS_ENABLED": "nats_enabled",
    "WOTHUB_NATS_HOST": "nats_host",
    "WOTHUB_NATS_PORT": "nats_port",
    "WOTHUB_NATS_WS_PORT": "nats_ws_port",
    "WOTHUB_NATS_URL": "nats_url",
    "WOTHUB_CLUSTER_NODE": "cluster_node",
    "WOTHUB_CLUSTER_NAME": "cluster_name",
    "WOTHUB_CLUSTER_HOST": "cluster_host",
    "WOTHUB_CLUSTER_PORT": "cluster_port",
    "WOTHUB_CLUSTER_ROUTES": "cluster_routes",
    "WOTHUB_CLUSTER_REPLICAS": "cluster_replicas",
    "WOTHUB_WORKERS": "workers",
}

FLAGS: dict[str, str] = {  # Config field -> the `wothub serve` flag that sets it
    "store_backend": "--store",
    "log_level": "--log-level",
    "log_format": "--log-format",
    "event_loop": "--event-loop",
    "server_names": "--server-name",
    "host": "--host",
    "http_host": "--http-host",
    "http_port": "--http-port",
    "public_url": "--public-url",
    "mqtt_port": "--mqtt-port",
    "nats_port": "--nats-port",
    "nats_url": "--nats-url",
    "cluster_node": "--node",
    "cluster_port": "--cluster-port",
    "cluster_routes": "--route",
    "cluster_replicas": "--replicas",
    "workers": "--workers",
}


def _scalar_kinds(schema: _Schema) -> dict[str, _Kind]:
    kinds: dict[str, _Kind] = {}
    for node in schema.values():
        if isinstance(node, _Value) and node.field:
            kinds[node.field] = node.kind
        elif isinstance(node, dict):
            kinds.update(_scalar_kinds(node))
    return kinds


_KINDS = _scalar_kinds(_SCHEMA)  # Config field -> kind, for every option that is one value
FLAG_KEYS = frozenset({"home", "config_file", *_KINDS})  # what build_config takes as flags


# -- reading each source ----------------------------------------------------------------


def _read_file(path: Path, *, required: bool) -> dict[str, Any] | None:
    """The options the file sets; None when it is not there and need not be."""
    source = str(path)
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: configuration file not found", source=source) from None
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", source=source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})", source=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}", source=source) from None
    values: dict[str, Any] = {}
    _walk(document, _SCHEMA, (), values, source)
    return values


def _walk(
    table: dict[str, Any],
    schema: _Schema | dict[str, _Value],
    prefix: tuple[str, ...],
    out: dict[str, Any],
    source: str,
) -> None:
    for key, value in table.items():
        dotted = ".".join((*prefix, key))

        def fail(problem: str, dotted: str = dotted) -> ConfigError:
            return ConfigError(f"{source}: {dotted}: {problem}", source=source, key=dotted)

        node = schema.get(key)
        if node is None:
            if not prefix and key == "home":
                raise fail(
                    "the home cannot be set in a file; use --home or WOTHUB_HOME"
                    + " (the file is read from the home)"
                )
            known = ", ".join(schema)
            raise fail(f"unknown key (known {'here' if prefix else 'at the top'}: {known})")
        if isinstance(node, _Value):
            try:
                converted = _convert(node.kind, value, from_text=False)
            except ValueError as exc:
                raise fail(str(exc)) from None
            out[node.field or key] = converted
            continue
        if not isinstance(value, dict):
            raise fail(f"expected a table, got {_shown(value, False)}")
        if isinstance(node, _Group):
            entries: dict[str, Any] = {}
            _walk(value, node.entries, (*prefix, key), entries, source)
            out[node.field] = entries
        else:
            _walk(value, node, (*prefix, key), out, source)


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for variable, field in ENV_VARS.items():
        text = env.get(variable, "").strip()
        if not text:  # unset and empty are the same
            continue
        try:
            values[field] = _convert(_KINDS[field], text, from_text=True)
        except ValueError as exc:
            raise ConfigError(
                f"environment variable {variable}: {exc}", source="environment", key=variable
            ) from None
    return values


def _from_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field, value in flags.items():
        if field in ("home", "config_file"):
            continue
        kind = _KINDS[field]
        try:
            values[field] = _convert(kind, value, from_text=isinstance(value, str))
        except ValueError as exc:
            flag = FLAGS.get(field, "--" + field.replace("_", "-"))
            raise ConfigError(f"{flag}: {exc}", source="command line", key=flag) from None
    return values


def build_config(
    flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """The configuration from flags, environment and file, flags first.

    ``flags`` maps Config field names (and ``home``, ``config_file``) to what was given on
    the command line; None or a missing key means "not given". Strings are parsed as an
    environment variable's text would be. ``env`` defaults to ``os.environ``. The file is
    ``flags["config_file"]`` (which must then exist) or ``<home>/wothub.toml`` (read when
    it is there). Raises ConfigError.
    """
    given = {key: value for key, value in (flags or {}).items() if value is not None}
    if unknown := set(given) - FLAG_KEYS:
        raise TypeError(f"not configuration flags: {', '.join(sorted(unknown))}")
    env = os.environ if env is None else env
    home = Path(given["home"]).expanduser() if "home" in given else default_home(env)
    explicit = "config_file" in given
    path = Path(given["config_file"]).expanduser() if explicit else home / CONFIG_FILE_NAME
    from_file = _read_file(path, required=explicit)
    values = {**(from_file or {}), **_from_env(env), **_from_flags(given)}
    return Config(home=home, config_file=path if from_file is not None else None, **values)
