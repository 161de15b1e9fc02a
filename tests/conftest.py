"""Fixtures shared by every test package: tests/support/running.py (a real hub and its
clients) and tests/support/jetstream.py (a nats-server with JetStream, stores on it) are
loaded as plugins, so no test imports a fixture from another package."""

pytest_plugins = ["tests.support.running", "tests.support.jetstream"]
