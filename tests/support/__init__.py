"""What the tests share: fixtures (a pytest plugin, registered in tests/conftest.py),
TDs and helpers.

What lives where. ``running.py``: the plugin, a real hub (``running``, ``hub_options``,
``admin``, ``viewer``; ``started_hub`` for a test that needs its own or stops it), its
devices (``running.device``) and ``PASSWORD``. ``tds.py``: the one lamp (variants are
built from it with ``only`` and added affordances, never copied), the sign, a sensor and
``thing_td`` for the rest. ``devices.py``: what a device does (register, report, emit,
answer). ``messages.py``: envelope messages for the router. ``http.py``: resource paths
and headers; ``problems.py``: RFC 9457 problem details; ``sse.py``: an SSE stream and its
reader; ``ws.py``: a raw WebSocket on /ws; ``mqtt.py``: paho-mqtt. ``served.py``: `wothub`
subprocesses. ``examples.py`` and ``data/``: the W3C example TDs, kept once.

A test module imports from here, tests.waiting, tests.requirements or its own package's
conftest, never from another test module; a package's conftest keeps only what that
package alone needs (the core tests' ``core_hub``, the MQTT and NATS hubs, the dashboard's
desk lamp and browser)."""
