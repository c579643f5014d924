"""The size-bounded cache that decoded pixels and encoded tiles live in."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from collab.slides.cache import SizedLRU


def test_evicts_least_recently_used_by_size() -> None:
    cache: SizedLRU[bytes] = SizedLRU(max_bytes=10)
    cache.put("a", b"aaaa", 4)
    cache.put("b", b"bbbb", 4)
    assert cache.get("a") == b"aaaa"  # "a" is now the most recent
    cache.put("c", b"cccc", 4)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (b"aaaa", b"cccc")
    assert cache.current_bytes == 8
    cache.put("huge", b"x" * 11, 11)  # larger than the whole budget: not kept
    assert cache.get("huge") is None
    assert len(cache) == 2


def test_replacing_a_key_keeps_the_count_right() -> None:
    cache: SizedLRU[str] = SizedLRU(max_bytes=100)
    cache.put("k", "one", 30)
    cache.put("k", "two", 50)
    assert cache.current_bytes == 50
    assert cache.get("k") == "two"


def test_discard_prefix() -> None:
    cache: SizedLRU[int] = SizedLRU(max_bytes=100)
    owner, other = object(), object()
    for i in range(3):
        cache.put((owner, i), i, 1)
        cache.put((other, i), i, 1)
    cache.discard_prefix(owner)
    assert [cache.get((owner, i)) for i in range(3)] == [None, None, None]
    assert [cache.get((other, i)) for i in range(3)] == [0, 1, 2]
    assert cache.current_bytes == 3


def test_each_value_is_created_once_however_many_threads_ask() -> None:
    cache: SizedLRU[str] = SizedLRU(max_bytes=1 << 20)
    calls: Counter[str] = Counter()
    lock = threading.Lock()
    threads = 8
    start = threading.Barrier(threads)

    def create(key: str) -> str:
        with lock:
            calls[key] += 1
        return key.upper()

    def worker(offset: int) -> list[str]:
        start.wait()
        keys = [f"k{(offset + i) % 12}" for i in range(12)]
        return cache.get_or_create_many([(k, lambda k=k: create(k)) for k in keys], len)

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(worker, range(threads)))
    assert all(sorted(r) == sorted(f"K{i}" for i in range(12)) for r in results)
    assert calls == Counter({f"k{i}": 1 for i in range(12)})


def test_a_failed_creation_is_raised_and_not_cached() -> None:
    cache: SizedLRU[str] = SizedLRU(max_bytes=100)

    def broken() -> str:
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        cache.get_or_create_many([("k", broken)], len)
    assert cache.get_or_create_many([("k", lambda: "fine")], len) == ["fine"]
