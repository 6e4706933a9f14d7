"""What the harness asks a cluster: each member's revision and HashKV, the final history."""

from __future__ import annotations

import time

from bench.checks import Ev
from bench.scenario import PREFIX
from bench.watchers import to_event


def hash_kv(endpoint: str, timeout: float = 3.0) -> tuple[int, int]:
    """(revision, HashKV hash) of one member, over a raw gRPC stub."""
    import grpc

    from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

    with grpc.insecure_channel(endpoint) as channel:
        r = rpc_pb2_grpc.MaintenanceStub(channel).HashKV(rpc_pb2.HashKVRequest(revision=0), timeout=timeout)
        return r.header.revision, r.hash


def convergence(cluster, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    last: dict = {}
    while True:
        states = {}
        for m in cluster.members:
            try:
                states[m.name] = hash_kv(m.endpoint)
            except Exception as e:  # noqa: BLE001 - report whatever went wrong
                states[m.name] = ("error", type(e).__name__)
        last = states
        values = set(states.values())
        if len(values) == 1 and "error" not in next(iter(values)):
            rev, h = next(iter(values))
            return {"converged": True, "revision": rev, "hash": h, "members": states}
        if time.monotonic() > deadline:
            return {"converged": False, "members": {k: list(v) for k, v in last.items()}}
        time.sleep(0.5)


def final_history(endpoint: str, until_revision: int, timeout: float = 60.0, start_revision: int = 1) -> list[Ev]:
    """Every change under the prefix, replayed by a watch from ``start_revision``
    (1: all of it; later when earlier history may have been compacted)."""
    from raftkv.client.remote import Client

    events: list[Ev] = []
    with Client([endpoint], timeout=10) as c:
        w = c.watch(PREFIX, prefix=True, start_revision=start_revision)
        deadline = time.monotonic() + timeout
        last = 0
        try:
            while last < until_revision and time.monotonic() < deadline:
                r = w.next_response(timeout=3.0)
                if r is None:
                    break
                for e in r.events:
                    events.append(to_event(e))
                    last = max(last, e.kv.mod_revision)
                if r.canceled:
                    break
        finally:
            w.cancel()
    return events
