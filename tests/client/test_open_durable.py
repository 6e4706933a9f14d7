"""raftkv.open(path): a durable single-member store on the cluster code path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import raftkv

pytestmark = pytest.mark.timeout(120)


def test_data_survives_close_and_reopen(tmp_path):
    path = str(tmp_path / "store")
    with raftkv.open(path) as kv:
        kv.put("a", "1")
        lease = kv.lease(60)
        kv.put("b", "2", lease=lease)
        revision = kv.put("a", "3").revision
    with raftkv.open(path) as kv:
        assert kv.get("a").value == b"3"
        assert kv.get("a", revision=revision - 2).value == b"1"  # history too
        assert kv.get("b").lease == lease.id
        assert lease.id in kv.leases()
        assert kv.put("c", "4").revision == revision + 1


def test_acknowledged_writes_survive_kill_9(tmp_path):
    """A child writes and reports each acknowledged key; it is killed with
    SIGKILL mid-stream; every reported key is there when the store reopens."""
    path = str(tmp_path / "store")
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import raftkv, sys
            kv = raftkv.open({path!r})
            i = 0
            while True:
                kv.put("k%d" % i, "v%d" % i)
                print(i, flush=True)
                i += 1
        """)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    acked = -1
    try:
        for line in child.stdout:
            acked = int(line)
            if acked >= 200:
                break
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    assert acked >= 200
    with raftkv.open(path) as kv:
        for i in range(acked + 1):
            assert kv.get(f"k{i}").value == f"v{i}".encode(), i
