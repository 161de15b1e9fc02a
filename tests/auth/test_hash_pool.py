"""Password checks run on the hash pool: the event loop goes on, and too many at once
are refused with a Retry-After."""

import asyncio
import threading

import pytest

from auth.errors import Busy
from auth.hash_pool import HashPool
from tests.waiting import until


async def test_the_event_loop_goes_on_while_a_check_runs():
    pool = HashPool(workers=1, queue=0)
    release = threading.Event()
    check = asyncio.ensure_future(pool.run(lambda: release.wait(10)))
    await until(lambda: pool.under_way == 1)
    ticks = 0
    while pool.under_way == 1 and ticks < 5:  # the loop runs while the thread waits
        await asyncio.sleep(0)  # one turn of the loop
        ticks += 1
    assert ticks == 5 and not check.done()
    release.set()
    assert await check is True
    pool.close()


async def test_beyond_workers_and_queue_a_check_is_refused_at_once():
    pool = HashPool(workers=1, queue=1)
    release = threading.Event()
    held = [asyncio.ensure_future(pool.run(lambda: release.wait(10))) for _ in range(2)]
    await until(lambda: pool.under_way == 2)
    with pytest.raises(Busy) as refused:
        await pool.run(lambda: True)
    assert refused.value.status == 503 and refused.value.retry_after >= 1
    assert refused.value.to_dict()["retryAfter"] >= 1
    release.set()
    assert await asyncio.gather(*held) == [True, True]
    assert await pool.run(lambda: "room again") == "room again"
    pool.close()
