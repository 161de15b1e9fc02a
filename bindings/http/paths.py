"""Thing ids in URL paths, and the ASGI wrapper that keeps them whole.

Thing ids are URIs (``urn:dev:ops:lamp/1``) and travel percent-encoded in one path
segment. Servers decode ``scope["path"]``, which would turn ``%2F`` into a separator, so
``RawPathRouting`` routes on the raw path instead: every path parameter arrives still
encoded, and handlers decode it with ``segment()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import PayloadTooLarge, problem_response

# Characters left as they are in a path segment (RFC 3986 pchar), so URNs stay readable.
_SAFE = ":@!$&'()*+,;="


def encode(thing_id: str) -> str:
    """One path segment for a Thing id or an affordance name."""
    return quote(thing_id, safe=_SAFE)


def segment(raw: str) -> str:
    """A path parameter, decoded; BadRequest when its percent-encoding is not UTF-8."""
    if "%" not in raw:  # most names, and ids sent with readable colons: nothing to decode
        return raw
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        from vocabulary.problems import BadRequest

        raise BadRequest(f"{raw!r} is not percent-encoded UTF-8") from None


class RawPathRouting:
    """Route on the encoded path so ids that contain ``/`` stay one segment, and refuse
    request bodies larger than ``max_body_bytes`` with 413: at once when the declared
    length says so, else when the body read grows past it. A body that grows past it
    once the response has started (a stream) ends the exchange as a disconnect: the
    answer can no longer be a 413."""

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
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                refusal = PayloadTooLarge(_too_large(self.max_body_bytes), limit="max_body_bytes")
                await problem_response(refusal.to_dict())(scope, receive, send)
                return
            started = False
            answer = send

            async def tracking_send(message: Message) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await answer(message)

            receive = self._limited(receive, lambda: started)
            send = tracking_send
        await self.app(scope, receive, send)

    def _limited(self, receive: Receive, started: Callable[[], bool]) -> Receive:
        limit = self.max_body_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if started():
                        return {"type": "http.disconnect"}
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


def query_int(params: Any, name: str, *, minimum: int) -> int | None:
    """An integer query parameter (None when absent), or BadRequest naming it."""
    from vocabulary.problems import BadRequest

    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {raw!r}", parameter=name) from None
    if value < minimum:
        raise BadRequest(f"{name} must be at least {minimum}", parameter=name)
    return value
