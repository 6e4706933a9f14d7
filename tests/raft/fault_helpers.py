"""Helpers for the fault tests (test_cluster_faults.py): real ``raftkv serve`` clusters on loopback.

Everything waits by polling a condition against a deadline; nothing sleeps
to synchronise. The fixtures (cluster teardown, member logs on failure) are
in conftest.py.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable

from raftkv.client.remote import Client
from raftkv.cluster.local import LocalCluster
from raftkv.errors import RaftKVError, Unavailable

# ---- waiting -------------------------------------------------------------------


def is_transient(error: BaseException) -> bool:
    """An error a client retries: no leader / leader changed / timed out /
    unreachable, or the gRPC deadline expiring on a single endpoint (which
    the remote client reports as a bare RaftKVError("Deadline Exceeded"))."""
    if isinstance(error, Unavailable):
        return True
    return isinstance(error, RaftKVError) and "deadline exceeded" in str(error).lower()


def retry(fn: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05):
    """fn() until it returns without a transient error; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except RaftKVError as e:
            if not is_transient(e):
                raise
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still failing after {timeout}s: {e!r}") from e
        time.sleep(interval)


def wait_until(condition: Callable[[], object], *, timeout: float, what: str,
               interval: float = 0.1, describe: Callable[[], object] | None = None):
    """Poll ``condition`` (transient errors count as "not yet") until it is truthy."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except RaftKVError as e:
            if not is_transient(e):
                raise
            last_error = e
        if time.monotonic() > deadline:
            detail = describe() if describe is not None else last_error
            raise AssertionError(f"{what}: not true after {timeout}s ({detail!r})")
        time.sleep(interval)


# ---- clusters ------------------------------------------------------------------


def kill_all(cluster: LocalCluster) -> None:
    """kill -9 every running member at the same instant (signals first, then reap)."""
    for member in cluster.members:
        if member.running:
            os.killpg(member.process.pid, signal.SIGKILL)
    for member in cluster.members:
        if member.process is not None:
            member.process.wait(timeout=10)


def pause(cluster: LocalCluster, index: int, timeout: float = 5.0) -> None:
    """SIGSTOP a member; returns once all its threads have stopped."""
    cluster.pause(index, timeout)


def start_all(cluster: LocalCluster, timeout: float = 30.0) -> None:
    for i, member in enumerate(cluster.members):
        if not member.running:
            cluster.start_member(i)
    cluster.wait_ready(timeout)


def log_tails(cluster: LocalCluster, lines: int = 60) -> str:
    out = []
    for member in cluster.members:
        try:
            with open(member.log_path, errors="replace") as f:
                tail = f.readlines()[-lines:]
        except FileNotFoundError:
            tail = ["(no log)\n"]
        out.append(f"==== {member.name} {member.log_path} (last {lines} lines)\n{''.join(tail)}")
    return "\n".join(out)


# ---- reading state ---------------------------------------------------------------


def kv_state(response) -> dict[bytes, tuple]:
    """A range response as {key: (value, create_revision, mod_revision, version, lease)}."""
    return {kv.key: (kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)
            for kv in response.kvs}


def member_clients(cluster: LocalCluster, timeout: float = 2.0) -> list[Client]:
    return [Client([m.endpoint], timeout=timeout) for m in cluster.members]


def wait_converged(cluster: LocalCluster, prefix: bytes, expected: dict | None = None, *,
                   timeout: float = 30.0, members: Iterable[int] | None = None) -> tuple[int, dict]:
    """Poll serializable reads on each member until all show the same revision
    and the same keys under ``prefix`` (and, if given, exactly ``expected``)."""
    indexes = list(range(len(cluster.members))) if members is None else list(members)
    clients = {i: Client([cluster.members[i].endpoint], timeout=2.0) for i in indexes}
    seen: dict[int, object] = {}

    def converged():
        for i, c in clients.items():
            try:
                r = c.range(prefix, prefix=True, serializable=True)
                seen[i] = (r.revision, kv_state(r))
            except RaftKVError as e:
                seen[i] = e
        states = list(seen.values())
        if any(isinstance(s, Exception) for s in states):
            return False
        if any(s != states[0] for s in states):
            return False
        return expected is None or states[0][1] == expected

    def describe():
        return {i: (s if isinstance(s, Exception) else (s[0], len(s[1]))) for i, s in seen.items()}

    try:
        wait_until(converged, timeout=timeout, what="members converge", describe=describe)
    finally:
        for c in clients.values():
            c.close()
    return next(iter(seen.values()))


# ---- a writer -------------------------------------------------------------------


class Writer(threading.Thread):
    """Puts unique keys through a client with every endpoint, recording the
    ones acknowledged. A put that fails is retried (same key and value) until
    it is acknowledged or the writer is stopped; only acknowledged puts count."""

    def __init__(self, endpoints: list[str], prefix: str, timeout: float = 2.0) -> None:
        super().__init__(daemon=True, name=f"writer-{prefix}")
        self.client = Client(endpoints, timeout=timeout)
        self.prefix = prefix
        self.acked: dict[bytes, bytes] = {}
        self.errors: collections.Counter = collections.Counter()
        self.unexpected: list[BaseException] = []
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def snapshot(self) -> dict[bytes, bytes]:
        with self._lock:
            return dict(self.acked)

    def run(self) -> None:
        seq = 0
        while not self._stop_event.is_set():
            key = f"{self.prefix}{seq:06d}".encode()
            value = self.value_for(key, seq)
            while not self._stop_event.is_set():
                try:
                    self.client.put(key, value)
                except RaftKVError as e:
                    self.errors[type(e).__name__] += 1
                    if not is_transient(e):
                        self.unexpected.append(e)
                    self._stop_event.wait(0.05)
                    continue
                except Exception as e:  # noqa: BLE001 - the test reports it
                    self.errors[type(e).__name__] += 1
                    self.unexpected.append(e)
                    self._stop_event.wait(0.05)
                    continue
                with self._lock:
                    self.acked[key] = value
                break
            seq += 1

    def value_for(self, key: bytes, seq: int) -> bytes:
        return f"v{seq}".encode()

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        wait_until(lambda: self.count >= count, timeout=timeout,
                   what=f"writer reaches {count} acknowledged puts",
                   describe=lambda: (self.count, dict(self.errors)), interval=0.02)

    def stop(self) -> dict[bytes, bytes]:
        self._stop_event.set()
        self.join(timeout=15)
        assert not self.is_alive(), "writer did not stop"
        self.client.close()
        return self.snapshot()


# ---- log audits -------------------------------------------------------------------

_TERM_RE = re.compile(r"term persisted term=(\d+) voted_for=(\S+)")
_LEADER_RE = re.compile(r"became leader term=(\d+)")


def audit_logs(cluster: LocalCluster) -> dict:
    """Parse every member's log: durable (term, vote) records and leaderships.

    Returns {"double_votes": [...], "term_regressions": [...], "two_leaders": [...],
    "votes": {member: {term: set}}, "leaders": {term: set}, "records": int}.
    """
    votes: dict[str, dict[int, set]] = {}
    leaders: dict[int, set] = collections.defaultdict(set)
    double_votes, regressions = [], []
    records = 0
    for member in cluster.members:
        per_term: dict[int, set] = collections.defaultdict(set)
        last_term = 0
        with open(member.log_path, errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                m = _TERM_RE.search(line)
                if m:
                    records += 1
                    term, voted_for = int(m.group(1)), m.group(2)
                    if term < last_term:
                        regressions.append(f"{member.name}:{lineno} term {term} after {last_term}: {line.strip()}")
                    last_term = max(last_term, term)
                    if voted_for != "None":
                        per_term[term].add(voted_for)
                        if len(per_term[term]) > 1:
                            double_votes.append(
                                f"{member.name}:{lineno} term {term} votes {sorted(per_term[term])}")
                m = _LEADER_RE.search(line)
                if m:
                    leaders[int(m.group(1))].add(member.name)
        votes[member.name] = dict(per_term)
    two_leaders = [f"term {t}: {sorted(names)}" for t, names in sorted(leaders.items()) if len(names) > 1]
    return {"double_votes": double_votes, "term_regressions": regressions,
            "two_leaders": two_leaders, "votes": votes, "leaders": dict(leaders), "records": records}


def assert_vote_audit(cluster: LocalCluster, *, min_leader_terms: int = 1) -> dict:
    audit = audit_logs(cluster)
    assert audit["records"] > 0, "no 'term persisted' lines in the member logs"
    assert not audit["double_votes"], f"a member voted twice in one term: {audit['double_votes']}"
    assert not audit["two_leaders"], f"two leaders in one term: {audit['two_leaders']}"
    assert not audit["term_regressions"], f"a member's durable term went back: {audit['term_regressions']}"
    assert len(audit["leaders"]) >= min_leader_terms, \
        f"expected at least {min_leader_terms} elected terms, saw {sorted(audit['leaders'])}"
    return audit


# ---- a watch that survives its member -----------------------------------------------


class FollowingWatch(threading.Thread):
    """Watches a key from ``start_revision``, preferring one member; when the
    stream ends (its member died) it reconnects to the next running member,
    resuming after the last revision it saw. ``events`` is everything seen."""

    def __init__(self, cluster: LocalCluster, key: bytes, start_revision: int, prefer: int) -> None:
        super().__init__(daemon=True, name="following-watch")
        self.cluster = cluster
        self.key = key
        self.next_revision = start_revision
        self.member = prefer
        self.events: list = []
        self.reconnects = 0
        self.problems: list = []
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        order = list(range(len(self.cluster.members)))
        while not self._stop_event.is_set():
            member = self.cluster.members[self.member]
            if not member.running:
                self.member = order[(order.index(self.member) + 1) % len(order)]
                self._stop_event.wait(0.1)
                continue
            client = Client([member.endpoint], timeout=2.0)
            try:
                watch = client.watch(self.key, start_revision=self.next_revision)
            except Exception as e:  # not up yet: try the next member
                self.problems.append(("create", self.member, repr(e)))
                client.close()
                self.member = order[(order.index(self.member) + 1) % len(order)]
                self._stop_event.wait(0.2)
                continue
            try:
                while not self._stop_event.is_set():
                    response = watch.next_response(timeout=0.2)
                    if response is None:
                        if watch.canceled:
                            break  # the stream ended
                        continue
                    if response.canceled:
                        self.problems.append(("canceled", self.member, response.cancel_reason))
                        break
                    with self._lock:
                        for event in response.events:
                            self.events.append(event)
                            self.next_revision = max(self.next_revision, event.kv.mod_revision + 1)
            finally:
                watch.cancel()
                client.close()
            if not self._stop_event.is_set():
                self.reconnects += 1
                self.member = order[(order.index(self.member) + 1) % len(order)]

    def seen(self) -> list:
        with self._lock:
            return list(self.events)

    def stop(self) -> list:
        self._stop_event.set()
        self.join(timeout=10)
        return self.seen()


def history(client: Client, prefix: bytes, start_revision: int, end_revision: int,
            timeout: float = 10.0) -> list[tuple]:
    """The events under prefix in [start_revision, end_revision], replayed by a watch."""
    out: list[tuple] = []
    with client.watch(prefix, prefix=True, start_revision=start_revision) as watch:
        deadline = time.monotonic() + timeout
        while not out or out[-1][2] < end_revision:
            response = watch.next_response(timeout=max(0.0, deadline - time.monotonic()))
            if response is None or response.canceled:
                raise AssertionError(f"history replay ended early at {out[-1:] if out else start_revision}: "
                                     f"{response}")
            for e in response.events:
                out.append((int(e.type), e.kv.key, e.kv.mod_revision, e.kv.value, e.kv.version))
    return [e for e in out if e[2] <= end_revision]


def hash_kv(endpoint: str, revision: int = 0, timeout: float = 5.0) -> tuple[int, int]:
    """Maintenance.HashKV of one member at ``revision`` (0: now): (header revision, hash)."""
    import grpc

    from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

    with grpc.insecure_channel(endpoint) as channel:
        r = rpc_pb2_grpc.MaintenanceStub(channel).HashKV(rpc_pb2.HashKVRequest(revision=revision),
                                                         timeout=timeout)
    return r.header.revision, r.hash
