"""Composition root: configuration, the ``wothub`` command and the runtime."""
