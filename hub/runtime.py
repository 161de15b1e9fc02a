"""Start the hub's parts, wait for a stop signal, stop them in reverse order."""

from __future__ import annotations

import asyncio
import logging
import signal

from auth.authorizer import RoleAuthorizer
from auth.service import AuthService
from bucketstore import BucketStore, open_store
from certs import CertificateAuthority
from digitwin.core import DigiTwin

from .config import Config
from .hub_things import authn_thing, certs_thing, clients_thing
from .router import Router

log = logging.getLogger("wothub")


class Hub:
    """Everything but the network listeners, composed on one store and home."""

    def __init__(self, config: Config, store: BucketStore) -> None:
        self.config = config
        self.store = store
        config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.auth = AuthService(store, config.home)
        self.ca = CertificateAuthority.load_or_create(config.home, store.bucket("certs"))
        self.server_certificate = self.ca.ensure_server_certificate(list(config.server_names))
        self.twin = DigiTwin(store)
        self.router = Router(self.twin, RoleAuthorizer(self.auth.accounts, self.auth.sessions))
        for service in (
            authn_thing(self.auth),
            clients_thing(self.auth, self.ca),
            certs_thing(self.ca, self.auth),
        ):
            self.router.add_service(service)

    def first_run(self) -> None:
        """Create the admin client if there is none, telling where its password is."""
        password_file = self.auth.ensure_admin()
        if password_file is not None:
            log.warning(
                "first run: created client 'admin'; its password is in %s (readable by "
                "you only). Log in, change it, then delete that file.",
                password_file,
            )

    async def start(self) -> None:
        await self.router.start()

    async def stop(self) -> None:
        await self.router.stop()
        self.twin.close()


async def _run_until_signal(hub: Hub) -> None:
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[str] = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda s=sig: stopped.done() or stopped.set_result(s.name))
    await hub.start()
    try:
        # Logged only once the handlers are in place, so "started" means "stoppable".
        log.info(
            "wothub started: %s store at %s; CA and server certificate in %s; press Ctrl-C to stop",
            hub.config.store_backend,
            hub.config.store_path,
            hub.config.home / "certs",
        )
        log.info("received %s, stopping", await stopped)
    finally:
        await hub.stop()


def serve(config: Config) -> int:
    """Run until SIGINT or SIGTERM; return the process exit code."""
    # The home holds the CA and keys: private before anything is created in it.
    config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    config.home.chmod(0o700)
    store = open_store(config.store_path, config.store_backend)
    try:
        hub = Hub(config, store)
        hub.first_run()
        asyncio.run(_run_until_signal(hub))
    finally:
        store.close()
    log.info("wothub stopped")
    return 0
