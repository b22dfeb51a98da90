"""The API's expiring cache: an expired entry is computed again once, however many requests want it at
that moment (a token's look-up writes its last use: a hundred concurrent requests made a hundred writes)."""

from __future__ import annotations

import threading

import pytest

from query_api.cache import TtlCache


def test_an_entry_expires_after_its_ttl():
    now = [0.0]
    cache: TtlCache[int] = TtlCache(5.0, clock=lambda: now[0])
    calls = []
    assert cache.get_or_compute("k", lambda: calls.append(1) or 1) == 1
    now[0] = 4.9
    assert cache.get_or_compute("k", lambda: calls.append(2) or 2) == 1
    now[0] = 5.1
    assert cache.get_or_compute("k", lambda: calls.append(3) or 3) == 3 and calls == [1, 3]


def concurrently(n: int, call) -> list:
    results, threads = [None] * n, []
    for i in range(n):
        threads.append(threading.Thread(target=lambda i=i: results.__setitem__(i, call())))
        threads[-1].start()
    return threads, results


def test_concurrent_misses_of_one_key_compute_it_once_and_all_get_its_value():
    cache: TtlCache[str] = TtlCache(5.0)
    release, started, calls = threading.Event(), threading.Event(), []

    def slow():
        calls.append(1)
        started.set()
        release.wait(5)
        return "value"

    threads, results = concurrently(20, lambda: cache.get_or_compute("k", slow))
    started.wait(5)
    release.set()
    for t in threads:
        t.join(5)
    assert calls == [1] and results == ["value"] * 20


def test_a_value_not_kept_is_still_shared_with_those_who_waited_for_it():
    cache: TtlCache[None] = TtlCache(5.0)
    release, started, calls = threading.Event(), threading.Event(), []

    def unknown():
        calls.append(1)
        started.set()
        release.wait(5)

    threads, results = concurrently(5, lambda: cache.get_or_compute("k", unknown, keep=lambda v: v is not None))
    started.wait(5)
    release.set()
    for t in threads:
        t.join(5)
    assert calls == [1] and results == [None] * 5
    assert cache.get_or_compute("k", lambda: "later") == "later"  # not cached: asked again next time


def test_when_the_computation_fails_a_waiter_computes_it_itself():
    cache: TtlCache[str] = TtlCache(5.0)
    release, started, calls = threading.Event(), threading.Event(), []

    def first_fails():
        calls.append(1)
        if len(calls) == 1:
            started.set()
            release.wait(5)
            raise OSError("database went away")
        return "value"

    errors = []

    def call():
        try:
            return cache.get_or_compute("k", first_fails)
        except OSError as e:
            errors.append(e)

    threads, results = concurrently(4, call)
    started.wait(5)
    release.set()
    for t in threads:
        t.join(5)
    assert len(errors) == 1 and calls == [1, 1] and sorted(map(str, results)) == ["None", "value", "value", "value"]


def test_other_keys_are_not_held_up_by_a_slow_one():
    cache: TtlCache[str] = TtlCache(5.0)
    release, started = threading.Event(), threading.Event()
    slow = threading.Thread(target=lambda: cache.get_or_compute("slow", lambda: started.set() or release.wait(5) or "s"))
    slow.start()
    started.wait(5)
    assert cache.get_or_compute("fast", lambda: "f") == "f"
    release.set()
    slow.join(5)


@pytest.mark.parametrize("ttl", [0, -1])
def test_a_cache_with_no_lifetime_keeps_nothing(ttl):
    cache: TtlCache[int] = TtlCache(ttl)
    assert cache.get_or_compute("k", lambda: 1) == 1 and cache.get_or_compute("k", lambda: 2) == 2
