"""The raftkv side of the differential tests, and the comparison.

Requests are plain dicts (see etcd_driver.py for the shape); the helpers
below build them.  ``Differ`` applies each request to a real etcd (through
the driver subprocess) and to a fresh ``raftkv.mvcc.KVStore``, normalizes
both answers to the same JSON-like form and compares them exactly.

This module never imports pyetcd (see etcd_driver.py for why).
"""

from __future__ import annotations

import json
import os
import pprint
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from raftkv.addresses import free_ports
from raftkv.errors import RaftKVError
from raftkv.mvcc import (
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    KVStore,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    SortOrder,
    SortTarget,
    StoreLimits,
    TxnRequest,
    TxnResponse,
)

HERE = Path(__file__).resolve().parent
ETCD_BIN = os.environ.get("RAFTKV_DIFF_ETCD", "/usr/bin/etcd")
DRIVER = HERE / "etcd_driver.py"

# ---------------------------------------------------------------------------
# Request builders
# ---------------------------------------------------------------------------


def _b(x: bytes | str) -> bytes:
    return x.encode() if isinstance(x, str) else bytes(x)


def get(key, range_end=b"", **options) -> dict:
    return {"op": "range", "key": _b(key), "range_end": _b(range_end), **options}


def put(key, value=b"", **options) -> dict:
    return {"op": "put", "key": _b(key), "value": _b(value), **options}


def delete(key, range_end=b"", **options) -> dict:
    return {"op": "delete", "key": _b(key), "range_end": _b(range_end), **options}


def cmp(key, target: str, result: str, operand=None, range_end=b"", operand_field=None) -> dict:
    """A txn compare. ``result`` is one of "=", "!=", ">", "<" (or etcd's names).

    The operand travels in the Compare oneof member matching ``target``, unless
    ``operand_field`` names another member ("version", "create_revision",
    "mod_revision", "value", "lease") or "none" to leave the oneof unset.
    """
    result = {"=": "EQUAL", "!=": "NOT_EQUAL", ">": "GREATER", "<": "LESS"}.get(result, result)
    if operand_field is None:
        if operand is None:
            operand = b"" if target == "VALUE" else 0
        if target == "VALUE":
            operand = _b(operand)
    elif operand_field == "value":
        operand = _b(operand if operand is not None else b"")
    elif operand_field == "none":
        operand = None
    else:
        operand = operand if operand is not None else 0
    c = {"key": _b(key), "range_end": _b(range_end), "target": target, "result": result,
         "operand": operand}
    if operand_field is not None:
        c["operand_field"] = operand_field
    return c


def txn(compare=(), success=(), failure=()) -> dict:
    return {"op": "txn", "compare": list(compare), "success": list(success),
            "failure": list(failure)}


EMPTY_OP = {"op": "empty"}


def compact(revision: int, physical: bool = True) -> dict:
    return {"op": "compact", "revision": revision, "physical": physical}


def lease_grant(lease_id: int, ttl: int) -> dict:
    return {"op": "lease_grant", "id": lease_id, "ttl": ttl}


def lease_revoke(lease_id: int) -> dict:
    return {"op": "lease_revoke", "id": lease_id}


def lease_ttl(lease_id: int) -> dict:
    """Granted TTL and attached keys of a lease (etcd's LeaseTimeToLive with keys)."""
    return {"op": "lease_ttl", "id": lease_id}


def prefix_end(prefix) -> bytes:
    end = bytearray(_b(prefix))
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


# ---------------------------------------------------------------------------
# JSON with bytes
# ---------------------------------------------------------------------------


def encode(obj):
    if isinstance(obj, (bytes, bytearray)):
        return {"hex": bytes(obj).hex()}
    if isinstance(obj, dict):
        return {k: encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    return obj


def decode(obj):
    if isinstance(obj, dict):
        if set(obj) == {"hex"}:
            return bytes.fromhex(obj["hex"])
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------
# The raftkv side
# ---------------------------------------------------------------------------


def _compare(c: dict) -> Compare:
    if "operand_field" in c:
        # The operand sits in a chosen member of etcd's Compare.target_union, which
        # raftkv's Compare (one ``operand``) cannot express: decode it the way raftkv's
        # gRPC layer does, from raftkv's own copy of the proto.
        from raftkv._proto.etcdserverpb import rpc_pb2
        from raftkv.wire import compare_from_pb

        msg = rpc_pb2.Compare(key=c["key"], range_end=c["range_end"],
                              target=CompareTarget[c["target"]].value,
                              result=CompareResult[c["result"]].value)
        if c["operand_field"] != "none":
            setattr(msg, c["operand_field"], c["operand"])
        return compare_from_pb(msg)
    return Compare(
        key=c.get("key", b""),
        target=CompareTarget[c["target"]],
        result=CompareResult[c["result"]],
        operand=c.get("operand", 0),
        range_end=c.get("range_end", b""),
    )


def to_raftkv(r: dict):
    op = r["op"]
    if op == "range":
        return RangeRequest(
            key=r.get("key", b""),
            range_end=r.get("range_end", b""),
            limit=r.get("limit", 0),
            revision=r.get("revision", 0),
            sort_order=SortOrder[r.get("sort_order", "NONE")],
            sort_target=SortTarget[r.get("sort_target", "KEY")],
            serializable=r.get("serializable", False),
            keys_only=r.get("keys_only", False),
            count_only=r.get("count_only", False),
            min_mod_revision=r.get("min_mod_revision", 0),
            max_mod_revision=r.get("max_mod_revision", 0),
            min_create_revision=r.get("min_create_revision", 0),
            max_create_revision=r.get("max_create_revision", 0),
        )
    if op == "put":
        return PutRequest(
            key=r.get("key", b""),
            value=r.get("value", b""),
            lease=r.get("lease", 0),
            prev_kv=r.get("prev_kv", False),
            ignore_value=r.get("ignore_value", False),
            ignore_lease=r.get("ignore_lease", False),
        )
    if op == "delete":
        return DeleteRangeRequest(
            key=r.get("key", b""), range_end=r.get("range_end", b""),
            prev_kv=r.get("prev_kv", False),
        )
    if op == "txn":
        return TxnRequest(
            compare=[_compare(c) for c in r.get("compare", [])],
            success=[to_raftkv(o) for o in r.get("success", [])],
            failure=[to_raftkv(o) for o in r.get("failure", [])],
        )
    if op == "empty":
        return None  # a RequestOp with no request set; raftkv's validator rejects it like etcd
    if op == "compact":
        return CompactionRequest(revision=r["revision"], physical=r.get("physical", True))
    if op == "lease_grant":
        return LeaseGrantRequest(ttl=r["ttl"], id=r["id"])
    if op == "lease_revoke":
        return LeaseRevokeRequest(id=r["id"])
    raise ValueError(f"unknown op {op!r}")


def _kv(kv) -> dict:
    return {
        "key": kv.key,
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
        "value": kv.value,
        "lease": kv.lease,
    }


def normalize_raftkv(op: str, resp) -> dict:
    if isinstance(resp, RangeResponse):
        return {"type": "range", "revision": resp.revision, "kvs": [_kv(k) for k in resp.kvs],
                "more": resp.more, "count": resp.count}
    if isinstance(resp, PutResponse):
        return {"type": "put", "revision": resp.revision,
                "prev_kv": _kv(resp.prev_kv) if resp.prev_kv is not None else None}
    if isinstance(resp, DeleteRangeResponse):
        return {"type": "delete", "revision": resp.revision, "deleted": resp.deleted,
                "prev_kvs": [_kv(k) for k in resp.prev_kvs]}
    if isinstance(resp, TxnResponse):
        return {"type": "txn", "revision": resp.revision, "succeeded": resp.succeeded,
                "responses": [normalize_raftkv("", r) for r in resp.responses]}
    if op == "compact":
        return {"type": "compact", "revision": resp.revision}
    if op == "lease_grant":
        return {"type": "lease_grant", "revision": resp.revision, "id": resp.id, "ttl": resp.ttl}
    if op == "lease_revoke":
        return {"type": "lease_revoke", "revision": resp.revision}
    raise TypeError(f"unexpected raftkv response {resp!r}")


class RaftKVSide:
    def __init__(self, limits: StoreLimits | None = None) -> None:
        self.store = KVStore(limits)

    def apply(self, r: dict) -> dict:
        op = r["op"]
        if op == "lease_ttl":
            # etcd's LeaseTimeToLive(keys=true), minus the time-dependent TTL
            lessor = self.store.lessor
            if r["id"] in lessor:
                lease = lessor.get(r["id"])
                return {"type": "lease_ttl", "id": r["id"], "granted_ttl": lease.ttl,
                        "keys": sorted(lease.keys), "found": True}
            return {"type": "lease_ttl", "id": r["id"], "granted_ttl": 0, "keys": [],
                    "found": False}
        try:
            return normalize_raftkv(op, self.store.apply(to_raftkv(r)))
        except RaftKVError as e:
            return {"error": str(e), "code": e.grpc_code}
        except Exception as e:  # a crash is a difference too, shown as such
            return {"error": f"raftkv raised {type(e).__name__}: {e}", "code": "PYTHON_EXCEPTION"}


# ---------------------------------------------------------------------------
# The etcd side: a driver subprocess and the servers it talks to
# ---------------------------------------------------------------------------


class DriverProcess:
    """etcd_driver.py in a child process (pyetcd never loads in this one)."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)  # the driver needs only the venv's site-packages
        self.proc = subprocess.Popen(
            [sys.executable, str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
            env=env,
            cwd=str(HERE),
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.lock = threading.Lock()

    def call(self, request: dict) -> dict:
        with self.lock:
            self.proc.stdin.write(json.dumps(encode(request)) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"etcd driver died (exit {self.proc.poll()})")
        out = decode(json.loads(line))
        if "driver_exception" in out:
            raise RuntimeError("etcd driver failed:\n" + out["driver_exception"])
        return out

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            pass
        finally:
            _kill_group(self.proc)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the process that started it dies, so a
    test run killed outright (e.g. pytest-timeout's thread method) leaves no etcd behind."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _free_port() -> int:
    return free_ports(1)[0]


class EtcdServer:
    """One etcd member on loopback, in its own process group."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.log_path = base_dir / "etcd.log"
        self.client_port = _free_port()
        self.peer_port = _free_port()
        while self.peer_port == self.client_port:
            self.peer_port = _free_port()
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.endpoint = f"127.0.0.1:{self.client_port}"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                ETCD_BIN,
                "--name", "default",
                "--data-dir", str(self.data_dir),
                "--listen-client-urls", client,
                "--advertise-client-urls", client,
                "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"default={peer}",
                "--logger", "zap",
                "--log-level", "warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed whole at teardown
            preexec_fn=_die_with_parent,
        )
        self.started = time.monotonic()

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def wait_healthy(self, timeout: float) -> None:
        deadline = self.started + timeout
        url = f"http://{self.endpoint}/health"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"etcd exited with {self.proc.returncode} before becoming healthy:\n"
                    + self.log_tail()
                )
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if b'"true"' in r.read():
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd not healthy after {timeout}s:\n" + self.log_tail())
            time.sleep(0.02)

    def stop(self) -> None:
        _kill_group(self.proc)
        self._log.close()
        shutil.rmtree(self.base_dir, ignore_errors=True)


class EtcdFactory:
    """Fresh etcd servers on demand.

    A couple of spares are kept starting in the background (etcd spends most
    of its ~1 s start waiting for its first election), so a test that asks
    for a fresh server rarely waits.  Every server, claimed or spare, is
    killed with its process group by ``stop``/``close``.
    """

    def __init__(self, base_dir: Path, spares: int = 2, start_timeout: float = 30.0) -> None:
        self.base_dir = base_dir
        self.spares = spares
        self.start_timeout = start_timeout
        self.pool: list[EtcdServer] = []
        self.live: set[EtcdServer] = set()
        self.count = 0

    def _spawn(self) -> EtcdServer:
        self.count += 1
        d = self.base_dir / f"etcd{self.count}"
        d.mkdir(parents=True)
        server = EtcdServer(d)
        self.live.add(server)
        return server

    def _fill(self) -> None:
        while len(self.pool) < self.spares:
            self.pool.append(self._spawn())

    def claim(self) -> EtcdServer:
        for attempt in range(3):
            server = self.pool.pop(0) if self.pool else self._spawn()
            self._fill()
            try:
                server.wait_healthy(self.start_timeout)
                return server
            except RuntimeError:
                self.release(server)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def release(self, server: EtcdServer) -> None:
        server.stop()
        self.live.discard(server)

    def close(self) -> None:
        for server in list(self.live):
            self.release(server)
        self.pool.clear()


# ---------------------------------------------------------------------------
# Comparing the two
# ---------------------------------------------------------------------------


def _short(obj, limit: int = 96):
    """A printable copy of a request or result: long byte strings elided."""
    if isinstance(obj, (bytes, bytearray)):
        if len(obj) > limit:
            return f"<{len(obj)} bytes {bytes(obj[:16])!r}...>"
        return bytes(obj)
    if isinstance(obj, dict):
        return {k: _short(v, limit) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_short(v, limit) for v in obj]
    return obj


def show(obj) -> str:
    return pprint.pformat(_short(obj), width=110, sort_dicts=False)


class Mismatch(AssertionError):
    pass


class Differ:
    """Applies each request to etcd and to raftkv and compares the answers."""

    def __init__(self, driver: DriverProcess, server: EtcdServer,
                 limits: StoreLimits | None = None) -> None:
        self.driver = driver
        self.server = server
        self.raftkv = RaftKVSide(limits)
        self.history: list[tuple[dict, dict, dict]] = []
        ok = driver.call({"op": "connect", "endpoint": server.endpoint})
        assert ok == {"ok": True}, ok

    def both(self, request: dict) -> tuple[dict, dict]:
        """Apply to both sides; return (etcd's result, raftkv's result) uncompared."""
        e = self.driver.call(request)
        r = self.raftkv.apply(request)
        self.history.append((request, e, r))
        return e, r

    def step(self, request: dict) -> dict:
        """Apply to both sides, require identical results, return etcd's."""
        e, r = self.both(request)
        if e != r:
            raise Mismatch(self.report())
        return e

    def run(self, requests) -> list[dict]:
        return [self.step(r) for r in requests]

    def report(self) -> str:
        lines = ["raftkv differs from etcd 3.4.", "Sequence (each step: request, etcd, raftkv):"]
        for i, (req, e, r) in enumerate(self.history, 1):
            same = e == r
            lines.append(f"--- step {i}{'' if same else '   <<< DIFFERENT'}")
            lines.append("request: " + show(req))
            if same:
                lines.append("both:    " + show(e))
            else:
                lines.append("etcd:    " + show(e))
                lines.append("raftkv:  " + show(r))
        return "\n".join(lines)
