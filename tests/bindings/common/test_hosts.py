"""Listen addresses and public host names (bindings/common/hosts.py)."""

from __future__ import annotations

import socket

from bindings.common.hosts import is_any_address, public_host, url_host


def test_a_wildcard_address_is_reached_by_the_machines_name_unless_one_is_configured():
    for wildcard in ("", "0.0.0.0", "::"):
        assert is_any_address(wildcard)
        assert public_host(wildcard) == socket.gethostname()
        assert public_host(wildcard, "hub.example") == "hub.example"
    assert not is_any_address("127.0.0.1")
    assert public_host("192.0.2.7") == "192.0.2.7"
    assert public_host("192.0.2.7", "hub.example") == "hub.example"


def test_an_ipv6_address_goes_into_a_url_in_brackets():
    assert url_host("::1") == "[::1]"
    assert url_host("hub.example") == "hub.example"
    assert url_host("127.0.0.1") == "127.0.0.1"
