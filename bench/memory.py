"""Memory held by the state machine per key.

    python -m bench memory --keys 100000 --value-size 256

Loads keys into a bare KVStore (no history beyond one version each) and
reports the Python heap it holds (tracemalloc) and the process's resident
growth, each divided by the number of keys.
"""

from __future__ import annotations

import gc
import json
import resource
import time
import tracemalloc

import click

from raftkv.mvcc import KVStore, PutRequest


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _load(keys: int, value_size: int) -> KVStore:
    store = KVStore()
    for i in range(keys):
        # a fresh value object per key, as values arriving from clients would be
        store.put(PutRequest(key=b"/bench/key/%010d" % i, value=bytes(value_size)))
    assert store.key_count == keys
    return store


def measure(keys: int, value_size: int) -> dict:
    gc.collect()
    rss_before = _rss_bytes()
    started = time.perf_counter()
    store = _load(keys, value_size)
    elapsed = time.perf_counter() - started
    gc.collect()
    rss = _rss_bytes() - rss_before
    del store
    gc.collect()

    tracemalloc.start()
    heap_before = tracemalloc.get_traced_memory()[0]
    store = _load(keys, value_size)
    gc.collect()
    heap = tracemalloc.get_traced_memory()[0] - heap_before
    tracemalloc.stop()
    del store
    key_size = len(b"/bench/key/%010d" % 0)
    return {
        "benchmark": "memory",
        "keys": keys,
        "key_size": key_size,
        "value_size": value_size,
        "heap_bytes_per_key": round(heap / keys, 1),
        "rss_bytes_per_key": round(rss / keys, 1),
        "payload_bytes_per_key": key_size + value_size,
        "puts_per_s": round(keys / elapsed),
    }


@click.command()
@click.option("--keys", default=100_000, show_default=True)
@click.option("--value-size", default=256, show_default=True)
def memory(keys: int, value_size: int) -> None:
    """Bytes of memory per key held by the state machine."""
    click.echo(json.dumps(measure(keys, value_size)))
