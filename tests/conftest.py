"""Fixtures shared by every test package: tests/support/running.py (a real hub and its
clients) is loaded as a plugin, so no test imports a fixture from another package."""

pytest_plugins = ["tests.support.running"]
