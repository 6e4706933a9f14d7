"""raftkv cluster up: a real 3-member cluster from one command, stopped by Ctrl-C."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess

import pytest

from cli_helpers import Background, kill_processes_mentioning, run, wait_until

pytestmark = pytest.mark.timeout(180)


def free_run(count: int) -> int:
    """A base port with ``count`` free consecutive ports after it."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - count)
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                sockets.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port range")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_cluster_up_serves_survives_a_kill_and_stops_on_ctrl_c(tmp_path):
    base = free_run(6)
    data = str(tmp_path / "dev-cluster")
    endpoints = ",".join(f"127.0.0.1:{base + 2 * i}" for i in range(3))
    try:
        with Background("cluster", "up", "--size", "3", "--base-port", str(base), "--data-dir", data) as up:
            up.wait_for(lambda: "Ctrl-C stops every member." in up.out_lines, "the cluster is up", timeout=60)
            rows = [line.split() for line in up.out_lines if re.match(r"m\d\s", line)]
            assert [r[0] for r in rows] == ["m0", "m1", "m2"]
            assert [r[1] for r in rows] == [f"http://127.0.0.1:{base + 2 * i}" for i in range(3)]
            assert [r[2] for r in rows] == [f"http://127.0.0.1:{base + 2 * i + 1}" for i in range(3)]
            pids = [int(r[3]) for r in rows]
            assert f"  export RAFTKV_ENDPOINTS={endpoints}" in up.out_lines

            assert run("put", "dev/greeting", "hello", endpoints=endpoints).ok().out == "OK\n"
            os.kill(pids[1], signal.SIGKILL)
            up.wait_for(lambda: any("member m1" in line and "exited" in line for line in up.err_lines),
                        "the exit is reported")
            assert run("get", "dev/greeting", "--print-value-only", endpoints=endpoints).ok().out == "hello\n"

            assert up.interrupt(timeout=30) == 0
        assert "stopped" in up.err_lines
        assert "Traceback" not in up.err
        wait_until(lambda: not any(_alive(pid) for pid in pids), timeout=15, what="every member stopped")

        # the same command resumes the same cluster, data included
        with Background("cluster", "up", "--size", "3", "--base-port", str(base), "--data-dir", data) as again:
            again.wait_for(lambda: "Ctrl-C stops every member." in again.out_lines, "up again", timeout=60)
            assert run("get", "dev/greeting", "--print-value-only", endpoints=endpoints).ok().out == "hello\n"
            status = run("cluster", "status", endpoints=endpoints).ok()
            assert "3 members" in status.lines[0] and status.lines[0].endswith("healthy")
            assert again.interrupt(timeout=30) == 0
    finally:
        kill_processes_mentioning(data)


def test_cluster_up_refuses_busy_ports_and_mismatched_data(tmp_path):
    base = free_run(2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", base))
        s.listen()
        busy = run("cluster", "up", "--size", "1", "--base-port", str(base), "--data-dir", str(tmp_path / "a"))
    assert busy.code == 1
    assert busy.err == (f"Error: port {base} is in use — is a cluster already running? Stop it, or choose "
                        "other ports with --base-port\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "cluster.json").write_text('{"size": 3, "base_port": 2379}')
    mismatch = run("cluster", "up", "--size", "1", "--data-dir", str(tmp_path / "b"))
    assert mismatch.code == 1 and "holds a cluster of 3 members" in mismatch.err


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_cluster_up_kube_serves_kubectl_through_its_kubeconfig(tmp_path):
    base, kube_port = free_run(2), free_run(1)
    data = str(tmp_path / "kube-cluster")
    try:
        with Background("cluster", "up", "--size", "1", "--base-port", str(base), "--data-dir", data,
                        "--kube", "--kube-port", str(kube_port)) as up:
            up.wait_for(lambda: "Ctrl-C stops every member." in up.out_lines, "the cluster is up", timeout=60)
            kubeconfig = os.path.join(data, "kubeconfig")
            assert f"  export KUBECONFIG={kubeconfig}" in up.out_lines
            env = {**os.environ, "KUBECONFIG": kubeconfig}
            namespaces = subprocess.run(["kubectl", "get", "namespaces", "-o", "name"], env=env, capture_output=True,
                                        text=True, timeout=60)
            assert namespaces.stdout == "namespace/default\n", namespaces.stderr
            created = subprocess.run(["kubectl", "apply", "-f", "-"], env=env, capture_output=True, text=True,
                                     timeout=60, input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
                                                       "data: {a: '1'}\n")
            assert created.stdout == "configmap/settings created\n", created.stderr
            # the objects are the cluster's: raftkv's own verbs see them
            listed = run("obj", "get", "configmaps", "-o", "name", endpoints=f"127.0.0.1:{base}").ok()
            assert listed.out == "configmap/settings\n"
            assert up.interrupt(timeout=30) == 0
        assert "stopped" in up.err_lines and "Traceback" not in up.err
    finally:
        kill_processes_mentioning(data)
