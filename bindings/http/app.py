"""The HTTP binding: one Starlette application for the directory, the twins, SSE and
logins, and the forms it adds to every twin TD."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from auth.service import AuthService
from bindings.common.web_credentials import WebCredentials
from bucketstore import StoreUnavailableError
from core.contract import Core
from vocabulary.problems import Problem

from .authn_api import AuthnApi
from .context import HttpContext
from .dashboard import Dashboard
from .directory_api import DirectoryApi
from .forms import HttpForms
from .groups_api import GroupsApi
from .paths import RawPathRouting
from .problems import on_error, on_http_exception, on_problem, on_store_unavailable
from .property_reads import PropertyReads
from .things_api import ThingsApi

DEFAULT_MAX_BODY = 1 << 20


class HttpBinding:
    def __init__(
        self,
        router: Core,
        auth: AuthService,
        verify_certificate: Callable[[Any], str],
        base_url: str = "",
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        sync_wait: float = 2.0,
        action_timeout: float = 60.0,
    ) -> None:
        self.router = router
        self.forms = HttpForms(base_url)
        self.context = HttpContext(
            router,
            WebCredentials(auth, verify_certificate),
            self.forms,
            sync_wait,
            action_timeout,
        )
        self.max_body_bytes = max_body_bytes
        self.authn = AuthnApi(auth)
        self.directory = DirectoryApi(self.context)
        self.things = ThingsApi(self.context)
        self.groups = GroupsApi(self.context)
        self.dashboard = Dashboard(self.directory.own_td)

    def set_base_url(self, base_url: str) -> None:
        """Where consumers reach this server (known once it listens): the forms' base."""
        self.forms.base_url = base_url.rstrip("/")

    def app(self, extra_routes: list[BaseRoute] | None = None) -> ASGIApp:
        """The application; ``extra_routes`` are other bindings on the same port
        (WebSocket). Plain property reads are answered in front of it (PropertyReads)."""
        starlette = Starlette(
            routes=[
                *self.authn.routes(),
                *self.dashboard.routes(),
                *self.directory.routes(),
                *self.things.routes(),
                *self.groups.routes(),
                *(extra_routes or []),
            ],
            middleware=[Middleware(RawPathRouting, max_body_bytes=self.max_body_bytes)],
            exception_handlers={
                Problem: on_problem,
                HTTPException: on_http_exception,
                StoreUnavailableError: on_store_unavailable,
                Exception: on_error,
            },
        )
        return PropertyReads(starlette, self.things)
