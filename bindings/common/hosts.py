"""Listen addresses and the names clients reach them by.

A listener bound to a wildcard address (``0.0.0.0``, ``::``, or empty: every interface)
has no address a client could use: clients elsewhere reach it by this machine's name
(or the configured public host), clients on this machine on loopback.
"""

from __future__ import annotations

import socket

ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def is_any_address(host: str) -> bool:
    return host in ANY_ADDRESS


def public_host(host: str, public: str | None = None) -> str:
    """The name clients elsewhere use for a listener on ``host``: ``public`` when it is
    configured, this machine's name for a wildcard address, else ``host`` itself."""
    if public:
        return public
    return socket.gethostname() if is_any_address(host) else host


def url_host(host: str) -> str:
    """``host`` as it goes into a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host
