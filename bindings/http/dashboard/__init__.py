"""The web dashboard: static HTML, CSS and JavaScript modules (``static/``, package
data, no build step) that use only the hub's public HTTP API, served at ``/`` to
browsers (``Accept: text/html``) and under ``/dashboard/``. Everything else asking for
``/`` gets the directory's TD, as before.

Every file goes out with a strict Content-Security-Policy (scripts, styles and fetches
from this origin only: no inline script or style), ``nosniff`` and ``Cache-Control:
no-cache`` with an ETag, so a browser revalidates (cheaply, 304) and a hub upgrade is
seen at once. See docs/dashboard.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vocabulary.problems import NotFound

STATIC = Path(__file__).parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# A file of the folder (plain names), or of a vendored library under vendor/<library>/
# (as it ships: uPlot.min.css). Every segment starts with a letter or digit: no "..".
_NAME = re.compile(
    r"^(vendor/[a-z0-9][a-z0-9_-]*/[A-Za-z0-9][A-Za-z0-9_.-]*|[a-z0-9][a-z0-9_-]*)\.(js|css|svg)$"
)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


class Dashboard:
    def __init__(self, own_td: Callable[[Request], Awaitable[Response]]) -> None:
        """``own_td`` answers ``/`` for everything but browsers (the directory's TD)."""
        self.own_td = own_td
        self._files: dict[str, tuple[bytes, str, str]] = {}  # name -> (body, type, etag)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.root, methods=["GET"]),
            Route("/dashboard/", self.index, methods=["GET"]),
            Route("/dashboard/{name:path}", self.static, methods=["GET"]),
        ]

    async def root(self, request: Request) -> Response:
        if wants_html(request.headers.get("accept", "")):
            response = self._file(request, "index.html")
        else:
            response = await self.own_td(request)
        response.headers["Vary"] = "Accept"
        return response

    async def index(self, request: Request) -> Response:
        return self._file(request, "index.html")

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not _NAME.match(name):
            raise NotFound(f"no dashboard file {name!r}")
        return self._file(request, name)

    def _file(self, request: Request, name: str) -> Response:
        entry = self._files.get(name)
        if entry is None:
            path = STATIC / name
            if not path.is_file():
                raise NotFound(f"no dashboard file {name!r}")
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            entry = self._files[name] = (body, CONTENT_TYPES[path.suffix], etag)
        body, content_type, etag = entry
        headers = {**SECURITY_HEADERS, "ETag": etag}
        if etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=headers)
        return Response(body, headers={**headers, "Content-Type": content_type})


def wants_html(accept: str) -> bool:
    """Does the client name text/html (as browsers do) rather than take anything?"""
    for part in accept.lower().split(","):
        media_type, *params = (p.strip() for p in part.split(";"))
        if media_type in ("text/html", "application/xhtml+xml"):
            return not any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00") for p in params)
    return False


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
