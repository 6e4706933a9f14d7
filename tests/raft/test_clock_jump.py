"""Wall clock jumps change nothing: leases expire on time, no election follows.

Every member runs with a wall clock that the test steps an hour forward,
then an hour back (wall_clock_shim.c, LD_PRELOADed: the realtime clock
jumps, the monotonic clocks do not, as when an operator or NTP steps a
machine's clock). Lease expiry and election timing must follow the
monotonic clock only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from fault_helpers import retry, wait_until

pytestmark = pytest.mark.timeout(120)

HERE = os.path.dirname(os.path.abspath(__file__))
TTL = 8


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> str:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the wall clock shim")
    out = str(tmp_path_factory.mktemp("shim") / "wall_clock_shim.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", out, os.path.join(HERE, "wall_clock_shim.c"), "-ldl"],
                   check=True)
    return out


def test_a_wall_clock_jump_neither_expires_nor_extends_a_lease(make_cluster, shim, tmp_path):
    offsets = [str(tmp_path / f"offset{i}") for i in range(3)]
    for path in offsets:
        open(path, "w").write("0")
    # Long election timeouts: a leader change (which gives every lease its
    # full TTL again) must come from the clock jump or not at all, not from
    # a busy machine starving a member for a second.
    cluster = make_cluster(3, extra_args=["--heartbeat-interval", "200", "--election-timeout", "4000"],
                           member_env=lambda i: {"LD_PRELOAD": shim,
                                                 "RAFTKV_WALL_CLOCK_OFFSET_FILE": offsets[i]})
    client = cluster.client()

    def jump(seconds: int) -> None:
        for path in offsets:
            open(path, "w").write(str(seconds))
        time.sleep(0.3)  # the shim looks at the file every 50 ms

    term = retry(lambda: client.status().raft_term, timeout=10, what="status")
    lease = retry(lambda: client.lease(TTL), timeout=10, what="grant")
    granted = time.monotonic()
    client.put("expiring", "soon", lease=lease)

    jump(3600)
    ttl = client.lease_time_to_live(lease.id).ttl
    assert 0 < ttl <= TTL, f"an hour forward, the lease has {ttl}s left"
    assert client.get("expiring") is not None

    jump(-3600)
    ttl = client.lease_time_to_live(lease.id).ttl
    assert 0 < ttl <= TTL, f"an hour back, the lease has {ttl}s left"

    wait_until(lambda: client.get("expiring") is None, timeout=TTL + 10, interval=0.1,
               what="the lease expires")
    expired_after = time.monotonic() - granted
    assert TTL - 0.5 <= expired_after <= TTL + 4, f"expired {expired_after:.1f}s after a {TTL}s grant"
    assert client.status().raft_term == term, "a wall clock jump caused an election"
    for member in cluster.members:  # the shim was in force in every member
        assert shim in open(f"/proc/{member.process.pid}/maps").read()
