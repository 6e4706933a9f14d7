"""The membership-change, slow-disk and kill-main-only faults: smoke runs
whose checks must pass, and proof that each fault really happens."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from bench import kill_main
from bench.cli import MATRIX, passed
from bench.harness import FAULTS, Scenario, run_scenario
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


def test_kill_main_only_is_registered():
    assert {"kill-main-only", "kill-main-only-all"} <= set(FAULTS)
    assert {"put/kill-main-only", "put/kill-main-only-all"} <= set(MATRIX.split(","))
    # frequent snapshots, the same flag for both systems; other faults keep each system's default
    for system in ("raftkv", "etcd"):
        assert Scenario(system=system, fault="kill-main-only").member_args == ["--snapshot-count", "500"]
    assert Scenario(fault="kill-main-only-all", snapshot_count=2000).member_args == ["--snapshot-count", "2000"]
    assert Scenario(fault="kill-leader").member_args == []
    assert passed({"linearizable": True, "lost_acked_writes": 0, "watch_violations": 0, "converged": True})
    assert not passed({"linearizable": True, "lost_acked_writes": 0, "watch_violations": 0, "converged": True,
                       "restart_failures": 1})


def test_kill_main_only_leaves_the_child_and_the_harness_reaps_it(tmp_path):
    """What the fault does to a process that forked (as a raftkv member does
    for each snapshot): kill -9 of its PID alone leaves the child running;
    kill_leftovers finds it by the cluster's folder in its command line."""
    marker = str(tmp_path / "m0.raftkv")
    code = "import os, sys, time\nif os.fork() == 0:\n    time.sleep(60)\n    os._exit(0)\ntime.sleep(60)\n"
    main = subprocess.Popen([sys.executable, "-c", code, marker], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not kill_main.children(main.pid):
            assert time.monotonic() < deadline, "no child"
            time.sleep(0.01)
        (child,) = kill_main.children(main.pid)
        started = kill_main._identify([child])[0]
        os.kill(main.pid, signal.SIGKILL)
        main.wait(timeout=10)
        time.sleep(0.1)
        assert kill_main.alive(started)                     # the child outlives its parent
        assert kill_main.cluster_processes(str(tmp_path)) == [child]
        assert kill_main.kill_leftovers(str(tmp_path)) == [child]
        deadline = time.monotonic() + 10
        while kill_main.alive(started):
            assert time.monotonic() < deadline, "the child survived kill_leftovers"
            time.sleep(0.01)
    finally:
        kill_main.kill_leftovers(str(tmp_path))
        if main.poll() is None:
            main.kill()
            main.wait()


@pytest.mark.skipif(not os.path.exists("/usr/bin/etcd"), reason="etcd-server not installed")
def test_kill_main_only_etcd(tmp_path):
    """Two rounds of kill -9 of the leader's main PID on etcd (no snapshot
    child there: killed at once), restarted on its data: every check passes."""
    s = Scenario(system="etcd", nodes=3, workload="put", clients=8, keys=8, duration=14.0,
                 fault="kill-main-only", fault_at=1.5, fault_interval=3.0, watchers=1)
    r = run_scenario(s, quiet=True, keep_dir=str(tmp_path))
    assert passed(r), {k: r[k] for k in ("linearizability", "lost_examples", "watch_problems", "convergence",
                                        "faults")}
    assert r["member_args"] == ["--snapshot-count", "500"] and r["restart_failures"] == 0
    assert len(r["faults"]) >= 2, r["faults"]
    for fault in r["faults"]:
        assert "error" not in fault and "restart_failed" not in fault, fault
        assert fault["member"] == fault["leader_before"] and fault["recovered_at"] > fault["at"]
        assert fault["snapshot_child_running"] is False      # etcd forks no snapshot writer
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("bench-etcd-")]
    with open(folder / f"{r['faults'][0]['member']}.log") as f:
        assert "snapshot count = 500" in f.read()        # the flag reached etcd
    assert r["leftover_processes_killed"] == 0
