"""How long a request waits while a member snapshots a large state.

    python -m bench snapshot-stall --keys 1000000

A single-member raftkv.Node in this process holds ``keys`` keys; a writer
puts one key at a time while the member is made to snapshot (and compact its
log) twice. Reports the worst put latency during the snapshots next to the
worst without one.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time

import click

from raftkv.mvcc.requests import PutRequest
from raftkv.raft.member import MemberConfig


def _writer(node, stop: threading.Event, latencies: list[float]) -> None:
    i = 0
    while not stop.is_set():
        started = time.perf_counter()
        node.put(b"/stall/%d" % (i % 100), b"v")
        latencies.append(time.perf_counter() - started)
        i += 1


def measure(keys: int, value_size: int) -> dict:
    from raftkv.client.node import Node
    from raftkv.cluster.local import free_ports

    with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as tmp:
        address = f"127.0.0.1:{free_ports(1)[0]}"
        node = Node(address, [address], os.path.join(tmp, "m"), MemberConfig(snapshot_min_entries=10**9))
        member = node.member
        node.put("ready", "1")
        value = b"x" * value_size
        load_started = time.perf_counter()
        with member.lock:  # a large state, built directly: only its size matters here
            for i in range(keys):
                member.store.put(PutRequest(b"/bench/%010d" % i, value))
        load_s = time.perf_counter() - load_started

        snapshot_file = os.path.join(tmp, "m", "snapshot")

        def phase(seconds: float, snapshot: bool) -> tuple[list[float], float]:
            latencies: list[float] = []
            stop = threading.Event()
            writer = threading.Thread(target=_writer, args=(node, stop, latencies))
            writer.start()
            time.sleep(0.5)
            started = time.monotonic()
            if snapshot:
                member.forceLogCompaction()
                while not os.path.exists(snapshot_file) and time.monotonic() - started < seconds:
                    time.sleep(0.05)
            else:
                time.sleep(seconds)
            took = time.monotonic() - started
            time.sleep(0.5)
            stop.set()
            writer.join()
            return latencies, took

        baseline, _ = phase(3.0, snapshot=False)
        during, snapshot_s = phase(600.0, snapshot=True)
        snapshot_bytes = os.path.getsize(snapshot_file) if os.path.exists(snapshot_file) else 0
        node.close()
    return {
        "benchmark": "snapshot-stall",
        "keys": keys,
        "value_size": value_size,
        "load_s": round(load_s, 1),
        "snapshot_bytes": snapshot_bytes,
        "snapshot_s": round(snapshot_s, 1),
        "baseline_puts": len(baseline),
        "baseline_max_ms": round(max(baseline) * 1000, 1),
        "during_snapshot_puts": len(during),
        "during_snapshot_max_ms": round(max(during) * 1000, 1),
        "during_snapshot_p99_ms": round(sorted(during)[int(len(during) * 0.99)] * 1000, 2),
        "during_snapshot_over_50ms": sum(1 for x in during if x > 0.05),
    }


@click.command("snapshot-stall")
@click.option("--keys", default=1_000_000, show_default=True)
@click.option("--value-size", default=256, show_default=True)
def snapshot_stall(keys: int, value_size: int) -> None:
    """Worst put latency while a member snapshots a large state."""
    click.echo(json.dumps(measure(keys, value_size)))
