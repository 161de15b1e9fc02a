"""``confirmed`` (vocabulary/nats_confirm.py) against the installed nats-py, on the hub's
own TLS connections to its nats-server (where nats-py's flush alone lost about one in ten
of these rounds; on a plain-TCP server it did not): a subscription confirmed gets what
another connection publishes next."""

from __future__ import annotations

import asyncio

from vocabulary.nats_confirm import confirmed

ROUNDS = 200  # nats-py's flush alone lost about one in ten of these (measured)


async def test_the_installed_nats_py_has_what_it_uses(nats_hub):
    assert callable(getattr(nats_hub.binding._nc, "_flush_pending", None))


async def test_a_confirmed_subscription_gets_what_is_published_next(nats_hub):
    binding = nats_hub.binding
    seed = binding.keys.hub_user.seed  # the hub's own user: any subject
    subscriber = await binding._open(seed, "test-subscriber")
    publisher = await binding._open(seed, "test-publisher")
    try:
        for i in range(ROUNDS):
            got: asyncio.Queue = asyncio.Queue()

            async def keep(msg, got=got) -> None:
                await got.put(msg.data)

            subscription = await subscriber.subscribe("test.confirm.>", cb=keep)
            await confirmed(subscriber)
            await publisher.publish("test.confirm.now", b"%d" % i)
            async with asyncio.timeout(5):
                assert await got.get() == b"%d" % i, f"round {i}"
            await subscription.unsubscribe()
    finally:
        await subscriber.close()
        await publisher.close()
