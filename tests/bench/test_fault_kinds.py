"""The membership-change and slow-disk faults: smoke runs whose checks must
pass, and proof that each fault really happens."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from bench.cli import passed
from bench.harness import Scenario, run_scenario
from bench.slow_disk import strace_wrapper
from raftkv.cluster.local import LocalCluster

pytestmark = pytest.mark.timeout(180)

needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def _tracer(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    raise AssertionError("no TracerPid line")


@pytest.mark.parametrize("system", ["raftkv", "etcd"])
def test_member_replace_under_load(system, tmp_path):
    if system == "etcd" and not os.path.exists("/usr/bin/etcd"):
        pytest.skip("etcd-server not installed")
    # etcd refuses a removal until its leader has been connected a while; the fault retries
    s = Scenario(system=system, nodes=3, workload="mix", clients=8, keys=8, duration=9.0,
                 fault="member-replace", fault_at=2.0, watchers=1)
    r = run_scenario(s, quiet=True, keep_dir=str(tmp_path))
    assert passed(r), {k: r[k] for k in ("linearizability", "lost_examples", "watch_problems", "convergence",
                                        "faults")}
    (fault,) = r["faults"]
    assert "error" not in fault, fault
    assert fault["member"] != fault["leader_before"] and fault["new_member"] == "m3"
    # the removed member is gone; the new one holds the same data as the rest
    assert fault["member"] not in r["convergence"]["members"]
    assert "m3" in r["convergence"]["members"] and len(r["convergence"]["members"]) == 3
    assert fault["caught_up_s"] is not None


@needs_strace
def test_slow_disk_delays_every_fsync_of_a_member(tmp_path):
    delay_ms = 300
    with LocalCluster(1, str(tmp_path / "c"), wrapper=strace_wrapper(delay_ms)) as c:
        c.start(timeout=60)
        (server,) = _children(c.members[0].process.pid)
        assert _tracer(server) == c.members[0].process.pid   # the member runs under strace
        with c.client() as client:
            t = time.monotonic()
            client.put("k", "v")
            assert time.monotonic() - t >= delay_ms / 1000   # acknowledged only after a (slow) fsync
            assert client.get("k").value == b"v"


@needs_strace
def test_slow_disk_smoke(tmp_path):
    s = Scenario(system="raftkv", nodes=3, workload="put", clients=8, keys=8, duration=5.0,
                 fault="slow-disk", fsync_delay_ms=5, watchers=1)
    r = run_scenario(s, quiet=True, keep_dir=str(tmp_path))
    assert passed(r), r["linearizability"]
    assert r["ops"] > 0
    (fault,) = r["faults"]
    assert fault["member"] == "all" and fault["fsync_delay_ms"] == 5
