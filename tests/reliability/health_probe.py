"""GET /health every 10 ms, from a process of its own (so the load the test makes does
not slow the probe down), until its standard input closes; then one JSON line:
{"latencies": [seconds, ...], "failures": [...]}.

    python health_probe.py URL CA_FILE
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time

import aiohttp


async def probe(url: str, ca_file: str) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    closed = asyncio.ensure_future(stdin.read())
    latencies: list[float] = []
    failures: list[str] = []
    context = ssl.create_default_context(cafile=ca_file)
    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(ssl=context)) as http:
        while not closed.done():
            started = time.perf_counter()
            try:
                async with asyncio.timeout(5), http.get("/health") as resp:
                    await resp.read()
                    if resp.status != 200:
                        failures.append(f"status {resp.status}")
            except (TimeoutError, aiohttp.ClientError) as exc:
                failures.append(repr(exc))
            latencies.append(time.perf_counter() - started)
            print(len(latencies), flush=True)  # the test counts the samples
            await asyncio.wait([closed], timeout=0.01)  # the probe's pace
    print(json.dumps({"latencies": latencies, "failures": failures}), flush=True)


if __name__ == "__main__":
    asyncio.run(probe(sys.argv[1], sys.argv[2]))
