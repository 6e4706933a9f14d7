"""raftkv alarm list|disarm and defrag on a member with a small quota,
printed as etcdctl prints them."""

from __future__ import annotations

import json

import pytest
from cli_helpers import ETCDCTL_MISSING, HAVE_ETCDCTL, etcdctl, invoke

from raftkv.cluster.local import LocalCluster

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def small(tmp_path):
    cluster = LocalCluster(1, str(tmp_path / "small"), extra_args=["--quota-backend-bytes", "20000"])
    try:
        cluster.start()
        yield cluster.members[0].endpoint
    finally:
        cluster.stop()


def fill(endpoint: str) -> str:
    for i in range(100):
        r = invoke(endpoint, "put", f"k{i}", "x" * 1000)
        if r.code != 0:
            return r.err
    raise AssertionError("100 puts of 1,000 bytes fit in a 20,000-byte quota")


@pytest.mark.skipif(not HAVE_ETCDCTL, reason=ETCDCTL_MISSING)
def test_alarm_and_defrag_verbs(small):
    assert "etcdserver: mvcc: database space exceeded" in fill(small)
    listed = invoke(small, "alarm", "list").ok().out
    assert listed == etcdctl(small, "alarm", "list").out
    assert listed.startswith("memberID:") and listed.endswith(" alarm:NOSPACE \n")
    assert invoke(small, "alarm", "list", "-w", "json").ok().out.replace(" ", "").replace("\n", "") == \
        etcdctl(small, "alarm", "list", "-w", "json").out.strip()
    invoke(small, "del", "k", "--prefix").ok()
    revision = json.loads(invoke(small, "get", "k0", "-w", "json").ok().out)["header"]["revision"]
    invoke(small, "compact", str(revision)).ok()
    assert invoke(small, "put", "x", "y").code != 0  # still refused: the alarm is up
    assert invoke(small, "defrag").ok().out == f"Finished defragmenting etcd member[{small}]\n"
    assert invoke(small, "alarm", "disarm").ok().out == listed
    assert invoke(small, "alarm", "list").ok().out == ""
    invoke(small, "put", "x", "y").ok()
