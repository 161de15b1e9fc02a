"""``wothub`` subprocesses in tests: the environment for ``wothub serve`` (every
listener on 127.0.0.1 and a free port, nothing inherited from the caller's WOTHUB_*
settings), a subprocess whose output is collected, and waiting for its listeners; ``Served``
is `wothub serve` run synchronously, its log in a file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time

import pytest

# serve_env is hub/local_cluster.py's (shared with bench/); the tests import it from here.
from hub.local_cluster import serve_env

__all__ = ["Process", "Served", "serve_env", "wait_listeners"]


class Process:
    """A subprocess whose output lines are collected as they come."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self._seen = asyncio.Condition()

    async def start(self, *args: str, env: dict[str, str], **options) -> None:
        """``options`` go to create_subprocess_exec (``start_new_session=True``: a
        process group of its own, to signal it as a terminal would)."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub.cli",
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            **options,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            async with self._seen:
                self.lines.append(line.decode(errors="replace").rstrip())
                self._seen.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, text: str, timeout: float, start: int = 0) -> int:
        """The index of the first line from ``start`` on that contains ``text``."""
        async with asyncio.timeout(timeout), self._seen:
            while True:
                for index in range(start, len(self.lines)):
                    if text in self.lines[index]:
                        return index
                await self._seen.wait()

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        try:
            async with asyncio.timeout(timeout):
                code = await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"{self.name} did not stop in time:\n{self.output}") from None
        if self._reader is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._reader
        return code


async def wait_listeners(home, process: Process, timeout: float = 40.0) -> dict:
    path = home / "listeners.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.process is not None
        if process.process.returncode is not None:
            pytest.fail(f"wothub serve exited:\n{process.output}")
        with contextlib.suppress(FileNotFoundError, ValueError):
            document = json.loads(path.read_text())
            if document.get("pid") == process.process.pid and "nats" in document["listeners"]:
                return document["listeners"]
        await asyncio.sleep(0.05)
    pytest.fail(f"no listeners.json within {timeout} s:\n{process.output}")


class Served:
    """``wothub serve`` on a free loopback port; its log goes to a file (never blocks).
    ``command`` runs the CLI (default: this interpreter's ``hub.cli``; an installed
    ``wothub`` script, say), with ``env`` (default: ``serve_env()``) in ``cwd``."""

    def __init__(self, home, log_path, command=None, env=None, cwd=None):
        self.home = home
        self.log_path = log_path
        self.log_file = open(log_path, "a")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [
                *(command or (sys.executable, "-m", "hub.cli")),
                "serve",
                "--home",
                str(home),
                "--http-port",
                "0",
                "--http-host",
                "127.0.0.1",
            ],
            env=serve_env() if env is None else env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=self.log_file,
        )

    @property
    def log(self):
        return self.log_path.read_text()

    def wait_for_listeners(self, timeout=30.0):
        """The https listener from <home>/listeners.json, once this process wrote it."""
        path = self.home / "listeners.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"wothub exited with {self.process.returncode}: {self.log}")
            try:
                document = json.loads(path.read_text())
            except (FileNotFoundError, ValueError):
                document = None
            if document and document.get("pid") == self.process.pid:
                return document["listeners"]["https"]
            time.sleep(0.05)
        pytest.fail(f"no listeners.json within {timeout}s: {self.log}")

    def stop(self, timeout=15.0):
        """SIGTERM and the exit code (killed if it does not stop in time)."""
        try:
            self.process.send_signal(signal.SIGTERM)
            return self.process.wait(timeout=timeout)
        finally:
            self.kill()

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.log_file.close()
