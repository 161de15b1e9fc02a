"""The WoT HTTP profile as the tests use it: resource paths and request headers."""

from __future__ import annotations

from urllib.parse import quote

from yarl import URL

# An action for an offline device: take the queued status at once (201), not wait for
# the output (504 after http.action_timeout).
ASYNC = {"Prefer": "respond-async"}
STREAM = {"Accept": "text/event-stream"}


def url(thing: str, *parts: str) -> str:
    """A resource path with every segment percent-encoded (a "/" in a Thing id too)."""
    return "/".join(["/things", *(quote(p, safe="") for p in (thing, *parts))])


def norm(href: str) -> str:
    """A URL as one string however its segments are encoded (":" or "%3A")."""
    return str(URL(href))
