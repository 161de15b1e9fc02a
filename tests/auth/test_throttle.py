"""The login throttle, with the time given: addresses refused, client ids delayed."""

import pytest

from auth.errors import TooManyAttempts
from auth.throttle import LoginThrottle, ThrottleConfig

CONFIG = ThrottleConfig(
    source_free=3,
    source_base_delay=10,
    source_max_delay=40,
    account_free=2,
    account_base_delay=1,
    account_max_delay=4,
    forget_after=100,
)


def test_an_address_waits_after_its_free_failures_doubling_up_to_the_most():
    throttle = LoginThrottle(CONFIG)
    for number in range(3):
        throttle.check_source("10.0.0.9", now=1000)
        throttle.failed("10.0.0.9", f"id-{number}", now=1000)
    waits = []
    for _ in range(4):
        with pytest.raises(TooManyAttempts) as refused:
            throttle.check_source("10.0.0.9", now=1000)
        waits.append(refused.value.retry_after)
        throttle.failed("10.0.0.9", "another", now=1000)
    assert waits == [10, 20, 40, 40]
    throttle.check_source("10.0.0.1", now=1000)  # another address is not affected
    throttle.check_source("10.0.0.9", now=1041)  # the wait is over
    throttle.check_source(None, now=1000)  # callers without an address are not counted


def test_a_client_id_is_delayed_never_refused_and_a_success_clears_it():
    throttle = LoginThrottle(CONFIG)
    delays = []
    for _ in range(6):
        delays.append(throttle.account_delay("admin", now=1000))
        throttle.failed("10.0.0.9", "admin", now=1000)
    assert delays == [0, 0, 1, 2, 4, 4]
    assert throttle.account_delay("admin", now=1003) == 1  # counted from the last failure
    throttle.succeeded("admin")
    assert throttle.account_delay("admin", now=1000) == 0


def test_a_quiet_address_or_client_id_is_forgotten():
    throttle = LoginThrottle(CONFIG)
    for _ in range(5):
        throttle.failed("10.0.0.9", "admin", now=1000)
    throttle.check_source("10.0.0.9", now=1101)
    assert throttle.account_delay("admin", now=1101) == 0


def test_an_address_that_failed_has_a_few_checks_under_way_at_most():
    throttle = LoginThrottle(CONFIG)
    for _ in range(3):  # no failure yet: a gateway's devices starting together
        throttle.begin("10.0.0.9", now=1000)
    for _ in range(3):
        throttle.end("10.0.0.9")
    throttle.failed("10.0.0.9", "admin", now=1000)
    throttle.begin("10.0.0.9", now=1000)
    throttle.begin("10.0.0.9", now=1000)
    with pytest.raises(TooManyAttempts):
        throttle.begin("10.0.0.9", now=1000)
    throttle.begin("10.0.0.1", now=1000)  # others are not affected
    throttle.end("10.0.0.9")
    throttle.begin("10.0.0.9", now=1000)
