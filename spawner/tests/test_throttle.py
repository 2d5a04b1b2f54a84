"""How many guesses a login name gets, and from where: a clock the test turns, no hub."""

import pytest

from jupyterhub_gpu_accounts.throttle import HOUR, LoginThrottle


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def guesses(throttle, clock, name, address, tries, every=0.1) -> int:
    """Tries made one after another, each ``every`` s after the last; the number that got a password check."""
    checked = 0
    for _ in range(tries):
        if throttle.wait(name, address) <= 0:
            checked += 1
            throttle.failed(name, address)
        clock.now += every
    return checked


def test_after_the_free_failures_each_try_waits_twice_as_long_up_to_the_longest_wait(clock):
    throttle = LoginThrottle(free_failures=3, max_delay=20, per_hour=0, clock=clock)
    for _ in range(3):
        assert throttle.wait("admin", "a") == 0
        throttle.failed("admin", "a")
    waits = []
    for _ in range(7):
        waits.append(round(throttle.wait("admin", "a"), 3))
        clock.now += waits[-1]
        throttle.failed("admin", "a")
    assert waits == [1, 2, 4, 8, 16, 20, 20]


def test_tries_while_waiting_are_not_checked_and_do_not_lengthen_the_wait(clock):
    throttle = LoginThrottle(free_failures=5, max_delay=600, per_hour=0, clock=clock)
    assert guesses(throttle, clock, "admin", "attacker", 200, every=0.01) == 5 + 1  # 2 s of hammering: one more
    # The owner behind the same address (a WSL2 gateway, a NAT) waits the announced delay, no longer.
    wait = throttle.wait("admin", "attacker")
    assert 0 < wait <= 2
    clock.now += wait
    assert throttle.wait("admin", "attacker") == 0
    throttle.succeeded("admin", "attacker")
    assert throttle.wait("admin", "attacker") == 0


def test_one_address_failing_never_slows_another(clock):
    throttle = LoginThrottle(free_failures=5, max_delay=600, per_hour=1000, clock=clock)
    guesses(throttle, clock, "admin", "attacker", 50)
    assert throttle.wait("admin", "attacker") > 0
    assert throttle.wait("admin", "owner") == 0 and throttle.wait("ben", "attacker") == 0


def test_many_addresses_get_no_more_than_the_ceiling_in_an_hour_and_the_owners_known_address_is_not_kept_out(clock):
    throttle = LoginThrottle(free_failures=5, max_delay=600, per_hour=30, clock=clock)
    throttle.succeeded("admin", "owner-laptop")
    checked = sum(guesses(throttle, clock, "admin", f"10.0.{n // 250}.{n % 250}", 5, every=1) for n in range(100))
    assert checked == 30, "a botnet of 100 addresses, 5 tries each"
    assert throttle.wait("admin", "10.9.9.9") > 0, "a new address waits"
    assert throttle.wait("admin", "owner-laptop") == 0, "where the owner logged in before, they are not kept out"
    # The wait is bounded: once the hour's failures fall below the ceiling, any address may try again.
    clock.now += throttle.wait("admin", "10.9.9.9")
    assert throttle.wait("admin", "10.9.9.9") == 0
    assert throttle.wait("admin", "10.9.9.9") <= HOUR


def test_names_that_exist_and_names_that_do_not_are_counted_alike(clock):
    throttle = LoginThrottle(free_failures=2, max_delay=60, per_hour=0, clock=clock)
    for name in ("admin", "nobody-at-all"):
        assert guesses(throttle, clock, name, "a", 10, every=0.01) == 2


def test_a_quiet_hour_starts_the_count_again(clock):
    throttle = LoginThrottle(free_failures=2, max_delay=60, per_hour=0, clock=clock)
    guesses(throttle, clock, "admin", "a", 3, every=0)
    clock.now += HOUR + 61
    assert throttle.wait("admin", "a") == 0
    throttle.failed("admin", "a")
    assert throttle.wait("admin", "a") == 0, "one failure after a quiet hour is the first again"


def test_a_flood_of_made_up_names_keeps_the_tables_bounded(clock):
    throttle = LoginThrottle(free_failures=5, max_delay=60, per_hour=10, max_entries=1000, clock=clock)
    for n in range(5000):
        throttle.failed(f"made-up-{n}", f"10.{n % 200}.0.1")
    assert len(throttle._pairs) <= 1000 and len(throttle._names) <= 1000
    # The newest are kept: what an attacker just did still counts.
    assert "made-up-4999" in throttle._names
