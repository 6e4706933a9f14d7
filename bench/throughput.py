"""``throughput``: puts and linearizable gets per second, raftkv and etcd in one run.

    python -m bench throughput --nodes 3 --clients 1,64 --seconds 15

The load is what etcd's own benchmark tool does, in Python: grpc.aio on
etcd's generated stubs, one channel per member, ``--clients`` coroutines
with one request in flight each, spread round robin over every member. Each
system gets a fresh cluster of real processes on loopback; for each number
of clients a put phase then a get phase (over ``--keys`` keys written by the
put phase) of ``--seconds`` each, after ``--warmup`` seconds unmeasured.
Results: a JSON object per system and client count on stdout, a table on
stderr, and with ``--out`` ``<out>/throughput-<nodes>n.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import asdict, dataclass

import click

from bench.scenario import ms, pct

OPS = ("put", "get")


@dataclass
class PhaseResult:
    system: str
    op: str
    clients: int
    seconds: float
    ops: int
    errors: int
    ops_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    first_error: str | None


async def _phase(stubs: list, op: str, clients: int, seconds: float, keys: int, value: bytes,
                 timeout: float) -> tuple[list[float], int, str | None, float]:
    from raftkv._proto.etcdserverpb import rpc_pb2

    latencies: list[float] = []
    errors = 0
    first_error: str | None = None
    end = time.monotonic() + seconds

    async def client(n: int) -> None:
        nonlocal errors, first_error
        kv = stubs[n % len(stubs)]
        i = n
        while time.monotonic() < end:
            key = b"/throughput/%06d" % (i % keys)
            i += clients
            began = time.monotonic()
            try:
                if op == "put":
                    await kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=timeout)
                else:
                    await kv.Range(rpc_pb2.RangeRequest(key=key), timeout=timeout)
            except Exception as e:  # noqa: BLE001 - counted, and the first one reported
                errors += 1
                first_error = first_error or f"{type(e).__name__}: {e}"
                await asyncio.sleep(0.05)
                continue
            latencies.append(time.monotonic() - began)

    started = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies, errors, first_error, time.monotonic() - started


async def _drive(endpoints: list[str], system: str, client_counts: list[int], seconds: float,
                 warmup: float, keys: int, value_size: int, timeout: float) -> list[PhaseResult]:
    import grpc

    from raftkv._proto.etcdserverpb import rpc_pb2_grpc

    channels = [grpc.aio.insecure_channel(e) for e in endpoints]
    try:
        stubs = [rpc_pb2_grpc.KVStub(c) for c in channels]
        value = b"v" * value_size
        results = []
        for clients in client_counts:
            for op in OPS:
                await _phase(stubs, op, clients, warmup, keys, value, timeout)
                latencies, errors, first_error, elapsed = await _phase(
                    stubs, op, clients, seconds, keys, value, timeout)
                latencies.sort()
                results.append(PhaseResult(
                    system=system, op=op, clients=clients, seconds=round(elapsed, 2), ops=len(latencies),
                    errors=errors, ops_per_s=round(len(latencies) / elapsed, 1),
                    p50_ms=ms(pct(latencies, 0.50)), p99_ms=ms(pct(latencies, 0.99)), first_error=first_error))
        return results
    finally:
        for c in channels:
            await c.close()


def measure(system: str, nodes: int, client_counts: list[int], seconds: float, warmup: float = 3.0,
            keys: int = 1000, value_size: int = 256, timeout: float = 10.0) -> list[PhaseResult]:
    """Every phase on a fresh ``nodes``-member cluster of ``system``."""
    from bench.harness import started_cluster

    with started_cluster(system, nodes, "throughput") as cluster:
        return asyncio.run(_drive(cluster.endpoints, system, client_counts, seconds, warmup, keys,
                                  value_size, timeout))


def table(results: list[PhaseResult]) -> str:
    by = {(r.system, r.op, r.clients): r for r in results}
    lines = ["| op | clients | ops/s raftkv | ops/s etcd | ratio | p99 ms raftkv | p99 ms etcd "
             "| errors raftkv / etcd |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for op, clients in sorted({(r.op, r.clients) for r in results}, key=lambda k: (k[1], OPS.index(k[0]))):
        a, b = by.get(("raftkv", op, clients)), by.get(("etcd", op, clients))
        ratio = f"{a.ops_per_s / b.ops_per_s:.2f}" if a and b and b.ops_per_s else ""
        lines.append(f"| {op} | {clients} | {a.ops_per_s if a else ''} | {b.ops_per_s if b else ''} | {ratio} "
                     f"| {a.p99_ms if a else ''} | {b.p99_ms if b else ''} "
                     f"| {a.errors if a else ''} / {b.errors if b else ''} |")
    return "\n".join(lines)


@click.command("throughput")
@click.option("--nodes", default=3, show_default=True)
@click.option("--clients", default="1,64", show_default=True, help="Comma-separated numbers of clients.")
@click.option("--seconds", default=15.0, show_default=True, help="Measured seconds of each phase.")
@click.option("--warmup", default=3.0, show_default=True)
@click.option("--keys", default=1000, show_default=True)
@click.option("--value-size", default=256, show_default=True)
@click.option("--systems", default="raftkv,etcd", show_default=True)
@click.option("--out", default=None, help="Folder for throughput-<nodes>n.json.")
def throughput(nodes: int, clients: str, seconds: float, warmup: float, keys: int, value_size: int,
               systems: str, out: str | None) -> None:
    """Puts and linearizable gets per second over every member, on grpc.aio."""
    counts = [int(c) for c in clients.split(",") if c]
    results: list[PhaseResult] = []
    for system in [s for s in systems.split(",") if s]:
        for r in measure(system, nodes, counts, seconds, warmup, keys, value_size):
            click.echo(json.dumps(asdict(r)))
            results.append(r)
    click.echo(table(results), err=True)
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, f"throughput-{nodes}n.json"), "w") as f:
            json.dump({"benchmark": "throughput", "nodes": nodes, "results": [asdict(r) for r in results]}, f,
                      indent=1)
