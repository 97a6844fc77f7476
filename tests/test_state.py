"""The state store's contract, checked on both backends: in-process and a real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis_support import redis_server

from switchman.state import LocalStore, StateStore
from switchman.state.redis_store import FallbackStore, RedisStore


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(params=["local", "redis"])
def store(request: pytest.FixtureRequest, redis_url: str) -> Iterator[StateStore]:
    if request.param == "local":
        yield LocalStore()
        return
    shared = RedisStore(redis_url, prefix=f"t{id(request)}")
    yield shared
    shared.close()


def test_bounded_spaces_evict_the_least_recently_used(store: StateStore) -> None:
    store.bound("s", 2)
    store.put("s", "a", "m1")
    store.put("s", "b", ["x", 1.5])
    assert store.get("s", "a") == "m1"  # refreshes a
    store.put("s", "c", "m3")
    assert store.get("s", "b") is None and store.get("s", "a") == "m1"
    assert store.get("s", "c") == "m3" and store.size("s") == 2


def test_several_keys_go_in_at_once_under_the_same_bound(store: StateStore) -> None:
    store.bound("m", 2)
    store.put_many("m", [("x", "1"), ("y", [2, "two"])])
    assert store.get("m", "x") == "1" and store.get("m", "y") == [2, "two"]  # y used last
    store.put_many("m", [("z", "3")])
    assert store.get("m", "x") is None and store.get("m", "z") == "3"
    store.put_many("m", [])
    assert store.size("m") == 2


def test_counters_add_atomically(store: StateStore) -> None:
    assert store.add("n", "k", 0) == 0
    assert store.add("n", "k", 3) == 3
    assert store.add("n", "k", -1) == 2


def test_amounts_refuse_to_pass_their_limit(store: StateStore) -> None:
    assert store.add_amount("b", "day", 0.6, limit=1.0) == pytest.approx(0.6)
    assert store.add_amount("b", "day", 0.5, limit=1.0) is None  # would pass the limit
    assert store.add_amount("b", "day", 0.4, limit=1.0) == pytest.approx(1.0)
    assert store.add_amount("b", "day", -0.25) == pytest.approx(0.75)  # a settle refunds


def test_event_windows_drop_what_is_older(store: StateStore) -> None:
    for at, ok in [(1.0, True), (2.0, False), (3.0, True), (3.0, True)]:
        store.record_event("w", "m", at, ok)
    assert store.events_since("w", "m", 2.0) == [False, True, True]
    assert store.events_since("w", "m", 0.0) == [False, True, True]  # 1.0 was dropped
    store.clear_events("w", "m")
    assert store.events_since("w", "m", 0.0) == []


def test_two_clients_of_one_redis_share_state(redis_url: str) -> None:
    a, b = RedisStore(redis_url, prefix="shared"), RedisStore(redis_url, prefix="shared")
    a.put("sticky", "conv", "mid")
    assert b.get("sticky", "conv") == "mid"
    a.add("n", "k", 2)
    assert b.add("n", "k", 1) == 3


def test_an_unreachable_redis_falls_back_to_local_state() -> None:
    failures: list[int] = []
    store = FallbackStore(RedisStore("redis://127.0.0.1:1/0", timeout_s=0.1),
                          on_failure=lambda: failures.append(1))
    store.put("sticky", "conv", "mid")
    assert store.get("sticky", "conv") == "mid" and store.degraded
    assert len(failures) == 2
