"""Thing ids in URL paths, and the ASGI wrapper that keeps them whole.

Thing ids are URIs (``urn:dev:ops:lamp/1``) and travel percent-encoded in one path
segment. Servers decode ``scope["path"]``, which would turn ``%2F`` into a separator, so
``RawPathRouting`` routes on the raw path instead: every path parameter arrives still
encoded, and handlers decode it with ``segment()``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import PayloadTooLarge

# Characters left as they are in a path segment (RFC 3986 pchar), so URNs stay readable.
_SAFE = ":@!$&'()*+,;="


def encode(thing_id: str) -> str:
    """One path segment for a Thing id or an affordance name."""
    return quote(thing_id, safe=_SAFE)


def segment(raw: str) -> str:
    """A path parameter, decoded; BadRequest when its percent-encoding is not UTF-8."""
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        from digitwin.errors import BadRequest

        raise BadRequest(f"{raw!r} is not percent-encoded UTF-8") from None


class RawPathRouting:
    """Route on the encoded path so ids that contain ``/`` stay one segment, and refuse
    request bodies larger than ``max_body_bytes`` with 413."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path")
        if raw:
            scope = {**scope, "path": raw.decode("latin-1").split("?", 1)[0]}
        if scope["type"] == "http":
            receive = self._limited(scope, receive)
        await self.app(scope, receive, send)

    def _limited(self, scope: Scope, receive: Receive) -> Receive:
        limit = self.max_body_bytes
        declared = _content_length(scope)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                raise PayloadTooLarge(_too_large(limit), limit="max_body_bytes")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(_too_large(limit), limit="max_body_bytes")
            return message

        return limited_receive


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(limit: int) -> str:
    return f"the request body is larger than the hub accepts ({limit} bytes)"


def query_int(params: Any, name: str, default: int | None, *, minimum: int) -> int | None:
    """An integer query parameter, or BadRequest naming it."""
    from digitwin.errors import BadRequest

    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {raw!r}", parameter=name) from None
    if value < minimum:
        raise BadRequest(f"{name} must be at least {minimum}", parameter=name)
    return value
