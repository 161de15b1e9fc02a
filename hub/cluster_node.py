"""A cluster node's start (docs/cluster.md): its nats-server joins the cluster first, then
the store opens, since the store is JetStream on that server.

On one node the hub opens LevelDB and its NATS binding starts nats-server among the other
listeners. A cluster node cannot: every bucket lives in the cluster's JetStream, so the
node's managed nats-server (with its ``cluster {}`` block) runs before the hub is built,
and the NATS binding is handed the running server. With ``nats_url`` (an existing NATS
cluster) there is no managed server, and the store connects to that URL.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterator

import orjson

from bindings.nats.server import ClusterListener, NatsKeys, NatsServer
from bucketstore import open_store
from bucketstore.jetstream import JetStreamStore
from bucketstore.memory import MemoryStore
from certs import CertificateAuthority
from digitwin.history import History, open_history
from vocabulary import clock

from .backup import copy_items
from .bindings import mqtt_listener
from .config import Config

log = logging.getLogger("wothub")

# A message up to this size: JetStream keeps a TD (up to max_td_bytes, 1 MiB by default)
# as one message, with headers; nats-server's own default is 1 MiB in all.
MAX_PAYLOAD = 8 << 20
FIRST_BUCKET = "clients"  # the first the hub opens: it waits for the cluster's JetStream


class ClusterNode:
    """The node's nats-server (None with ``nats_url``) and its JetStream store."""

    def __init__(self, config: Config) -> None:
        assert config.cluster_node is not None
        self.config = config
        # Only the CA's files are used here (the server and node certificates, which are
        # files); the records of issued client certificates are in the cluster's store,
        # where the hub's own CertificateAuthority keeps them.
        ca = CertificateAuthority.load_or_create(config.home, MemoryStore().bucket("certs"))
        self.tls = ssl.create_default_context(cadata=ca.ca_cert_pem.decode())
        self.keys = NatsKeys.load_or_create(config.home / "nats")
        self.server: NatsServer | None = None
        if config.nats_url is not None:
            return
        names = list(config.server_names)
        server_cert = ca.ensure_server_certificate(names)
        assert config.cluster_host is not None and config.nats_host is not None
        node_cert = ca.ensure_node_certificate(config.cluster_node, [*names, config.cluster_host])
        self.server = NatsServer(
            config.home,
            host=config.nats_host,
            port=config.nats_port,
            ws_port=config.nats_ws_port,
            cert_file=server_cert.cert_path,
            key_file=server_cert.key_path,
            ca_file=ca.ca_cert_path,
            keys=self.keys,
            auth_timeout=config.nats_auth_timeout,
            max_connections=config.nats_max_connections,
            mqtt=mqtt_listener(config),
            cluster=ClusterListener(
                config.cluster_name,
                config.cluster_node,
                config.cluster_host,
                config.cluster_port,
                config.cluster_routes,
                node_cert.cert_path,
                node_cert.key_path,
            ),
            max_payload=MAX_PAYLOAD,
            # MQTT sessions survive a node as the store does.
            mqtt_replicas=config.replicas,
        )

    @property
    def url(self) -> str:
        if self.server is not None:
            return self.server.local_url
        assert self.config.nats_url is not None
        return self.config.nats_url

    async def start(self) -> None:
        if self.server is not None:
            await self.server.start()
            assert self.server.cluster is not None
            log.info(
                "node %s of cluster %s: routes on %s:%d, to %s",
                self.config.cluster_node,
                self.config.cluster_name,
                self.server.cluster.host,
                self.server.cluster.port,
                ", ".join(self.config.cluster_routes) or "no other node yet",
            )

    async def open_store(self) -> JetStreamStore:
        """The store on the cluster's JetStream, once its first bucket is open: that
        waits (``cluster_wait``) until the cluster has a leader and enough nodes for the
        replicas. In a thread, so that the node's server stays supervised meanwhile."""
        config = self.config

        def open_it() -> JetStreamStore:
            store = JetStreamStore(
                config.home / "store",
                servers=self.url,
                tls=self.tls,
                nkeys_seed=self.keys.hub_user.seed,
                replicas=config.replicas,
                cluster_wait=config.cluster_wait,
            )
            try:
                store.bucket(FIRST_BUCKET)
            except BaseException:
                store.close()
                raise
            return store

        log.info(
            "waiting up to %.0f s for the cluster's JetStream (%d replicas)",
            config.cluster_wait,
            config.replicas,
        )
        if config.nats_url is not None and config.cluster_replicas is None:
            log.warning(
                "the buckets this node creates get 1 replica: on a NATS cluster you run, "
                "set [cluster] replicas (--replicas N) to the copies it should keep "
                "(docs/cluster.md)"
            )
        return await asyncio.to_thread(open_it)

    def adopt_single_hub(self, store: JetStreamStore) -> int:
        """A single hub that becomes the first node of a cluster keeps its data: its
        LevelDB store (``<home>/store``) is copied into the cluster's store (its value
        history into the history stream), if that has no client yet, then set aside
        (``store.adopted-<time>``). Returns the items copied; 0 when there is nothing
        to adopt, or the cluster has data of its own already (the LevelDB store is then
        left in place, and a warning says so)."""
        path = self.config.store_path
        if not (path / "CURRENT").is_file():  # no LevelDB store in this home
            return 0
        if store.bucket(FIRST_BUCKET).count():
            log.warning(
                "%s holds a single hub's store, but the cluster has clients already: it "
                "is not copied into the cluster (start the node that grew from a single "
                "hub first, alone with an empty cluster)",
                path,
            )
            return 0
        with open_store(path, "leveldb") as single:
            history = open_history(store, self.config.history_config())
            items = single.snapshot()
            count = copy_items((i for i in items if i[0] != "history"), store)
            count += copy_history(single.bucket("history").items(), history)
        aside = path.with_name(f"store.adopted-{time.strftime('%Y%m%dT%H%M%S')}")
        path.rename(aside)
        log.info(
            "copied this home's single-hub store into the cluster (%d items); the "
            "old store is kept as %s",
            count,
            aside,
        )
        return count

    async def stop(self) -> None:
        if self.server is not None:
            self.server.stop_supervising()
            await self.server.stop()


ADOPTED_BATCH = 10_000  # history values appended, then flushed, at a time


def copy_history(items: Iterator[tuple[str, bytes]], history: History) -> int:
    """A single hub's ``history`` bucket into the cluster's history (its stream), through
    its append and flush, a batch at a time; how many values."""
    count = 0
    for key, value in items:
        thing_id, kind, name, millis, _ = key.split("\0")
        timestamp = clock.rfc3339(int(millis) / 1000)
        history.append(thing_id, kind, name, orjson.loads(value), timestamp)
        count += 1
        if count % ADOPTED_BATCH == 0:
            history.flush()
    history.flush()
    return count
