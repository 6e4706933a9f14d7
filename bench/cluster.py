"""Put latency and throughput through the Python client on a local cluster,
raftkv and etcd side by side in one run.

    python -m bench cluster-put --nodes 3 --clients 1,64 --seconds 5

Each system gets a fresh cluster of real processes on loopback; the load
comes from raftkv.Client in this process (one gRPC channel, one thread per
client, one request in flight per client).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time

import click

from raftkv.cluster.local import EtcdCluster, LocalCluster


def _load(endpoints: list[str], clients: int, seconds: float, value: bytes) -> dict:
    from raftkv.client.remote import Client

    client = Client(endpoints, timeout=10)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = time.monotonic() + seconds

    def worker(n: int) -> None:
        i = 0
        mine = latencies[n]
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                client.put(b"/bench/%d/%d" % (n, i % 1000), value)
                mine.append(time.perf_counter() - started)
            except Exception:
                errors[n] += 1
            i += 1

    client.put(b"/bench/warmup", value)
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    client.close()
    all_latencies = sorted(x for per in latencies for x in per)
    q = statistics.quantiles(all_latencies, n=100) if len(all_latencies) > 1 else [0] * 99
    return {
        "ops": len(all_latencies),
        "errors": sum(errors),
        "ops_per_s": round(len(all_latencies) / elapsed, 1),
        "p50_ms": round(q[49] * 1000, 3),
        "p99_ms": round(q[98] * 1000, 3),
    }


def measure(system: str, nodes: int, clients: int, seconds: float, value_size: int) -> dict:
    cls = LocalCluster if system == "raftkv" else EtcdCluster
    with tempfile.TemporaryDirectory(prefix=f"bench-{system}-") as tmp:
        with cls(nodes, tmp) as cluster:
            cluster.start()
            cluster.leader_index()
            leader = cluster.members[cluster.leader_index()].endpoint
            result = _load([leader], clients, seconds, os.urandom(value_size))
    return {"benchmark": "cluster-put", "system": system, "nodes": nodes, "clients": clients,
            "seconds": seconds, "value_size": value_size, **result}


@click.command("cluster-put")
@click.option("--nodes", default=3, show_default=True)
@click.option("--clients", default="1,64", show_default=True, help="Comma-separated client counts.")
@click.option("--seconds", default=5.0, show_default=True)
@click.option("--value-size", default=256, show_default=True)
@click.option("--systems", default="raftkv,etcd", show_default=True)
def cluster_put(nodes: int, clients: str, seconds: float, value_size: int, systems: str) -> None:
    """Put latency and throughput, raftkv next to etcd."""
    rows = []
    for count in [int(c) for c in clients.split(",")]:
        for system in systems.split(","):
            if system == "etcd" and not os.path.exists(EtcdCluster.ETCD):
                click.echo(json.dumps({"system": "etcd", "skipped": "etcd-server not installed"}))
                continue
            row = measure(system, nodes, count, seconds, value_size)
            rows.append(row)
            click.echo(json.dumps(row))
    for count in {r["clients"] for r in rows}:
        by = {r["system"]: r for r in rows if r["clients"] == count}
        if "raftkv" in by and "etcd" in by and by["etcd"]["ops_per_s"]:
            click.echo(json.dumps({
                "clients": count,
                "throughput_ratio_raftkv_over_etcd": round(by["raftkv"]["ops_per_s"] / by["etcd"]["ops_per_s"], 3),
                "p50_ratio_raftkv_over_etcd": round(by["raftkv"]["p50_ms"] / by["etcd"]["p50_ms"], 3),
            }))
