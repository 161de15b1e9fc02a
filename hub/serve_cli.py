"""``wothub serve``: run the hub in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bucketstore import BucketStoreError

from .commands import add_command, add_home_arguments, config_from_args
from .config import Config

log = logging.getLogger("wothub")

_DEFAULTS = Config(home=Path("."))


def _configure_serve(parser: argparse.ArgumentParser) -> None:
    # Every default is None: a flag that is not given leaves the environment, the file
    # and then Config's default to decide. Values are checked by build_config.
    add_home_arguments(parser)
    d = _DEFAULTS
    options: list[tuple[str, str, dict[str, str]]] = [
        ("--store", "store_backend", {"metavar": "BACKEND"}),
        ("--server-name", "server_names", {"metavar": "NAME", "action": "append"}),
        ("--log-level", "log_level", {"metavar": "LEVEL"}),
        ("--log-format", "log_format", {"metavar": "FORMAT"}),
        ("--event-loop", "event_loop", {"metavar": "LOOP"}),
        ("--host", "host", {"metavar": "HOST"}),
        ("--http-host", "http_host", {"metavar": "HOST"}),
        ("--http-port", "http_port", {"metavar": "N"}),
        ("--public-url", "public_url", {"metavar": "URL"}),
        ("--mqtt-port", "mqtt_port", {"metavar": "N"}),
        ("--nats-port", "nats_port", {"metavar": "N"}),
        ("--nats-url", "nats_url", {"metavar": "URL"}),
        ("--node", "cluster_node", {"metavar": "NAME"}),
        ("--cluster-port", "cluster_port", {"metavar": "N"}),
        ("--route", "cluster_routes", {"metavar": "HOST:PORT", "action": "append"}),
        ("--replicas", "cluster_replicas", {"metavar": "N"}),
        ("--workers", "workers", {"metavar": "N"}),
    ]
    helps = {
        "store_backend": f"bucket store backend (env WOTHUB_STORE; file: store; "
        f"default {d.store_backend})",
        "server_names": "a DNS name or address clients use to reach the hub, for its TLS "
        "certificate (repeatable; replaces env WOTHUB_SERVER_NAMES, comma-separated, "
        "and file: server_names)",
        "log_level": "DEBUG, INFO, WARNING or ERROR (env WOTHUB_LOG_LEVEL; file: log_level; "
        f"default {d.log_level})",
        "log_format": "text (human-readable) or json (one object a line) (env "
        f"WOTHUB_LOG_FORMAT; file: log_format; default {d.log_format})",
        "event_loop": "auto (uvloop where installed), uvloop or asyncio (env "
        f"WOTHUB_EVENT_LOOP; file: event_loop; default {d.event_loop})",
        "host": "address every listener binds unless it has its own: 0.0.0.0 for every "
        f"interface (env WOTHUB_HOST; file: host; default {d.host}, this machine only)",
        "http_host": "address the HTTPS listener binds (env WOTHUB_HTTP_HOST; file: "
        "[http] host; default: --host)",
        "http_port": f"HTTPS port, 0 for any free one (env WOTHUB_HTTP_PORT; file: "
        f"[http] port; default {d.http_port})",
        "public_url": "base URL clients reach the hub at, used in TD forms (env "
        "WOTHUB_PUBLIC_URL; file: [http] public_url; default https://<host name>:<port>)",
        "mqtt_port": f"MQTT port (env WOTHUB_MQTT_PORT; file: [mqtt] port; default {d.mqtt_port})",
        "nats_port": f"NATS port (env WOTHUB_NATS_PORT; file: [nats] port; default {d.nats_port})",
        "nats_url": "an existing NATS server or cluster to use instead of managing one, "
        "nats:// or tls:// (docs/nats.md; with --node: docs/cluster.md; env "
        "WOTHUB_NATS_URL; file: [nats] url)",
        "cluster_node": "run as this node of a cluster (docs/cluster.md): the node's name, "
        "the same at every start (env WOTHUB_CLUSTER_NODE; file: [cluster] node)",
        "cluster_port": "the node's route listener, where the other nodes connect (env "
        f"WOTHUB_CLUSTER_PORT; file: [cluster] port; default {d.cluster_port})",
        "cluster_routes": "another node's route listener (repeatable; replaces env "
        "WOTHUB_CLUSTER_ROUTES, comma-separated, and file: [cluster] routes)",
        "cluster_replicas": "copies JetStream keeps of each bucket (env "
        "WOTHUB_CLUSTER_REPLICAS; file: [cluster] replicas; default: the nodes this one "
        "knows, itself and its routes, at most 3)",
        "workers": "hub processes on this machine, sharing its nats-server and the store "
        "on its JetStream (docs/cluster.md; env WOTHUB_WORKERS; file: workers; "
        f"default {d.workers})",
    }
    for flag, dest, extra in options:
        parser.add_argument(flag, dest=dest, help=helps[dest], **extra)


def _run_serve(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from .logs import setup_logging

    setup_logging(config.log_level, config.log_format)
    if config.config_file is not None:
        log.info("configuration file: %s", config.config_file)
    from .runtime import serve  # here, so other subcommands do not load the whole hub

    try:
        return serve(config)
    except BucketStoreError as exc:
        log.error("%s", exc)
        return 1


add_command("serve", "run the hub until Ctrl-C or SIGTERM", _configure_serve, _run_serve)
