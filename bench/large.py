"""``large``: a store of a million keys, raftkv and etcd side by side.

    python -m bench large --keys 1000000 --value-size 256            # both systems
    python -m bench large --keys 1000000 --system raftkv --out bench/results

Each system gets a fresh cluster of ``--nodes`` real processes on loopback,
and then, in this order:

- load: ``--keys`` keys through Txns of 100 puts, 16 Txns in flight, spread
  over every member (grpc.aio on etcd's stubs): keys per second;
- memory: each member's resident memory grown by the load, per key;
- snapshot: a Maintenance.Snapshot stream from the leader: bytes and seconds;
- range: one linearizable Range over the first 100,000 keys, three times;
- compaction: Compact to the revision the load reached (physical);
- catch-up (3 members or more): a follower removed and a new member added
  with an empty data directory, until it has the cluster's revision;
- restart: kill -9 of every member, then every member started again, until a
  linearizable count of the keys is answered and right.

All the while (but for the restart) a prober puts one key on the leader
every 20 ms from a thread of its own: each phase reports its worst put and
its put p99, next to the p99 of the same prober on the idle cluster before
the load. Results: a JSON object per system on stdout, a table on stderr,
and with ``--out`` ``<out>/large-<nodes>n-<keys>.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field

import click

from bench.scenario import ms, pct

PREFIX = b"/large/"
TXN_PUTS = 100
IN_FLIGHT = 16
RANGE_KEYS = 100_000
PROBE_EVERY = 0.02


def key_of(i: int) -> bytes:
    return PREFIX + b"%010d" % i


def prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


@dataclass
class Phase:
    seconds: float
    worst_put_ms: float | None = None
    put_p99_ms: float | None = None
    failed_puts: int = 0
    detail: dict = field(default_factory=dict)


@dataclass
class LargeResult:
    system: str
    nodes: int
    keys: int
    value_size: int
    idle_put_p99_ms: float | None
    load_keys_per_s: float
    rss_bytes_per_key: float
    snapshot_bytes: int
    phases: dict[str, Phase]


class Prober:
    """Puts one key every ``PROBE_EVERY`` seconds on one member, from a thread
    with a channel of its own, and keeps each put's start and latency."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.samples: list[tuple[float, float]] = []
        self.failed: list[float] = []  # when each put that failed began
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._put_began = threading.Event()
        self._last_began = 0.0
        self._thread = threading.Thread(target=self._run, name="large-prober", daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        import grpc

        from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

        with grpc.insecure_channel(self.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            while not self._stop.is_set():
                began = self._last_began = time.monotonic()
                self._put_began.set()
                try:
                    kv.Put(rpc_pb2.PutRequest(key=b"/large-probe", value=b"p"), timeout=10)
                except grpc.RpcError:
                    self.failed.append(began)
                latency = time.monotonic() - began
                self.samples.append((began, latency))
                self._wake.wait(max(0.0, PROBE_EVERY - latency))
                self._wake.clear()

    def begin(self) -> float:
        """Starts a phase: a put begins now (a phase shorter than the probe
        interval would otherwise have none), and the phase starts with it."""
        self._put_began.clear()
        self._wake.set()
        if not self._put_began.wait(30):
            raise RuntimeError("the prober did not start a put within 30 s")
        return self._last_began

    def between(self, start: float, end: float) -> list[float]:
        """Latencies of the puts that ran (at least partly) within [start, end]."""
        return sorted(lat for began, lat in list(self.samples) if began <= end and began + lat >= start)

    def phase(self, start: float, end: float, **detail) -> Phase:
        """The puts during [start, end]: once one that began after ``end``
        has finished, every put that overlapped the phase is recorded."""
        deadline = time.monotonic() + 30
        while not any(began > end for began, _ in self.samples[-3:]) and time.monotonic() < deadline:
            time.sleep(PROBE_EVERY)
        latencies = self.between(start, end)
        failed = sum(1 for began in list(self.failed) if start <= began <= end)
        return Phase(seconds=round(end - start, 3), worst_put_ms=ms(latencies[-1]) if latencies else None,
                     put_p99_ms=ms(pct(latencies, 0.99)), failed_puts=failed, detail=detail)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def load(endpoints: list[str], keys: int, value_size: int) -> float:
    """Every key written through Txns of ``TXN_PUTS`` puts, ``IN_FLIGHT`` at a time: seconds taken."""
    import grpc

    from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

    channels = [grpc.aio.insecure_channel(e) for e in endpoints]
    try:
        stubs = [rpc_pb2_grpc.KVStub(c) for c in channels]
        batches = iter(range(0, keys, TXN_PUTS))

        async def writer(n: int) -> None:
            kv = stubs[n % len(stubs)]
            for first in batches:
                ops = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key_of(i), value=os.urandom(value_size)))
                       for i in range(first, min(first + TXN_PUTS, keys))]
                for attempt in range(5):
                    try:
                        await kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=30)
                        break
                    except grpc.aio.AioRpcError:
                        if attempt == 4:
                            raise
                        await asyncio.sleep(0.5)

        began = time.monotonic()
        await asyncio.gather(*(writer(n) for n in range(IN_FLIGHT)))
        return time.monotonic() - began
    finally:
        for c in channels:
            await c.close()


def _stubs(endpoint: str):
    import grpc

    from raftkv._proto.etcdserverpb import rpc_pb2_grpc

    # a 100k-key range answers ~30 MB; etcdctl too lifts gRPC's 4 MiB default
    channel = grpc.insecure_channel(endpoint, options=[("grpc.max_receive_message_length", -1)])
    return channel, rpc_pb2_grpc.KVStub(channel), rpc_pb2_grpc.MaintenanceStub(channel)


def count_keys(endpoint: str, timeout: float = 5.0) -> tuple[int, int]:
    """A linearizable count of the loaded keys, and the revision it was read at."""
    from raftkv._proto.etcdserverpb import rpc_pb2

    channel, kv, _ = _stubs(endpoint)
    with channel:
        r = kv.Range(rpc_pb2.RangeRequest(key=PREFIX, range_end=prefix_end(PREFIX), count_only=True),
                     timeout=timeout)
        return r.count, r.header.revision


def snapshot(endpoint: str) -> tuple[int, float]:
    from raftkv._proto.etcdserverpb import rpc_pb2

    channel, _, maintenance = _stubs(endpoint)
    with channel:
        began = time.monotonic()
        size = sum(len(chunk.blob) for chunk in maintenance.Snapshot(rpc_pb2.SnapshotRequest(), timeout=600))
        return size, time.monotonic() - began


def ranges(endpoint: str, keys: int, times: int = 3) -> list[float]:
    from raftkv._proto.etcdserverpb import rpc_pb2

    channel, kv, _ = _stubs(endpoint)
    took = []
    with channel:
        for _ in range(times):
            began = time.monotonic()
            r = kv.Range(rpc_pb2.RangeRequest(key=key_of(0), range_end=key_of(min(keys, RANGE_KEYS))), timeout=120)
            took.append(time.monotonic() - began)
            if len(r.kvs) != min(keys, RANGE_KEYS):
                raise RuntimeError(f"the range returned {len(r.kvs)} keys, not {min(keys, RANGE_KEYS)}")
    return took


def compact(endpoint: str, revision: int) -> None:
    from raftkv._proto.etcdserverpb import rpc_pb2

    channel, kv, _ = _stubs(endpoint)
    with channel:
        kv.Compact(rpc_pb2.CompactionRequest(revision=revision, physical=True), timeout=600)


def wait_serving(endpoint: str, keys: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if count_keys(endpoint, timeout=1.0)[0] == keys:
                return
        except Exception:  # noqa: BLE001 - not serving yet
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{endpoint} did not answer a right count of {keys} keys in time")


class _Runner:
    """What bench.membership.replace_follower expects of a fault runner."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def log(self, line: str) -> None:
        click.echo(line, err=True)


def measure(system: str, nodes: int, keys: int, value_size: int) -> LargeResult:
    from bench.harness import started_cluster
    from bench.membership import replace_follower

    phases: dict[str, Phase] = {}
    with started_cluster(system, nodes, "large") as cluster:
        leader = cluster.leader_index(timeout=30)
        leader_endpoint = cluster.members[leader].endpoint
        rss_before = [rss_bytes(m.process.pid) for m in cluster.members]
        with Prober(leader_endpoint) as prober:
            time.sleep(2.0)
            idle = prober.between(0.0, time.monotonic())

            start = prober.begin()
            took = asyncio.run(load(cluster.endpoints, keys, value_size))
            phases["load"] = prober.phase(start, time.monotonic())
            rss_after = [rss_bytes(m.process.pid) for m in cluster.members]
            count, revision = count_keys(leader_endpoint)
            if count != keys:
                raise RuntimeError(f"{count} keys after the load, not {keys}")

            start = prober.begin()
            snapshot_size, _ = snapshot(leader_endpoint)
            phases["snapshot"] = prober.phase(start, time.monotonic(), bytes=snapshot_size)

            start = prober.begin()
            took_ranges = ranges(leader_endpoint, keys)
            phases["range"] = prober.phase(start, time.monotonic(), each_ms=[ms(t) for t in took_ranges],
                                           keys=min(keys, RANGE_KEYS))

            start = prober.begin()
            compact(leader_endpoint, revision)
            phases["compaction"] = prober.phase(start, time.monotonic(), revision=revision)

            if nodes >= 3:
                event: dict = {}
                start = prober.begin()
                replace_follower(_Runner(cluster), leader, event, catch_up_timeout=600)
                phases["catch_up"] = prober.phase(start, time.monotonic(), caught_up_s=event.get("caught_up_s"))

        for i in range(len(cluster.members)):
            cluster.kill(i)
        killed = time.monotonic()
        for i in range(len(cluster.members)):
            cluster.start_member(i)
        wait_serving(cluster.members[0].endpoint, keys, deadline=killed + 300)
        phases["restart"] = Phase(seconds=round(time.monotonic() - killed, 3))
        return LargeResult(
            system=system, nodes=nodes, keys=keys, value_size=value_size,
            idle_put_p99_ms=ms(pct(idle, 0.99)), load_keys_per_s=round(keys / took),
            rss_bytes_per_key=round(sum(a - b for a, b in zip(rss_after, rss_before)) / len(rss_after) / keys, 1),
            snapshot_bytes=snapshot_size, phases=phases)


def table(results: list[LargeResult]) -> str:
    by = {r.system: r for r in results}
    systems = [s for s in ("raftkv", "etcd") if s in by]
    rows: list[tuple[str, list[str]]] = [
        ("load, keys/s", [f"{by[s].load_keys_per_s:,}" for s in systems]),
        ("RSS per key, B", [f"{by[s].rss_bytes_per_key:,.0f}" for s in systems]),
        ("snapshot, MB / s", [f"{by[s].snapshot_bytes / 1e6:.1f} / {by[s].phases['snapshot'].seconds}"
                              for s in systems]),
        ("100k-key range, ms (median of 3)", [f"{sorted(by[s].phases['range'].detail['each_ms'])[1]:,}"
                                              for s in systems]),
        ("compaction, s", [f"{by[s].phases['compaction'].seconds}" for s in systems]),
        ("restart to serving after kill -9, s", [f"{by[s].phases['restart'].seconds}" for s in systems]),
        ("put p99 idle, ms", [f"{by[s].idle_put_p99_ms}" for s in systems]),
    ]
    if all("catch_up" in by[s].phases for s in systems):
        rows.insert(5, ("follower catch-up from empty, s",
                        [f"{by[s].phases['catch_up'].detail['caught_up_s']}" for s in systems]))
    for name in ("load", "snapshot", "range", "compaction", "catch_up"):
        if all(name in by[s].phases for s in systems):
            rows.append((f"worst put / p99 during {name.replace('_', '-')}, ms",
                         [f"{by[s].phases[name].worst_put_ms} / {by[s].phases[name].put_p99_ms}" for s in systems]))
    lines = ["| figure | " + " | ".join(systems) + " |", "|---|" + "---:|" * len(systems)]
    lines += [f"| {name} | " + " | ".join(values) + " |" for name, values in rows]
    return "\n".join(lines)


@click.command("large")
@click.option("--keys", default=1_000_000, show_default=True)
@click.option("--value-size", default=256, show_default=True)
@click.option("--nodes", default=3, show_default=True, help="Members; the catch-up phase needs 3 or more.")
@click.option("--system", "systems", multiple=True, default=("raftkv", "etcd"), show_default=True,
              type=click.Choice(["raftkv", "etcd"]), help="Repeat for both; both by default.")
@click.option("--out", default=None, help="Folder for large-<nodes>n-<keys>.json.")
def large(keys: int, value_size: int, nodes: int, systems: tuple[str, ...], out: str | None) -> None:
    """A million keys: load, memory, snapshot, range, compaction, catch-up, restart."""
    results = []
    for system in systems:
        result = measure(system, nodes, keys, value_size)
        click.echo(json.dumps(asdict(result)))
        results.append(result)
    click.echo(table(results), err=True)
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, f"large-{nodes}n-{keys}.json"), "w") as f:
            json.dump({"benchmark": "large", "nodes": nodes, "keys": keys, "value_size": value_size,
                       "results": [asdict(r) for r in results]}, f, indent=1)
