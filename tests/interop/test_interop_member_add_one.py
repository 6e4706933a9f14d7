"""A documented difference (README, "Differences from etcd"): a voter added
to a one-member cluster. Each side's answer is asserted; neither is compared."""

from __future__ import annotations

import os
import time

import pytest

from interop_tools import ETCD_BIN, ETCD_MISSING, EtcdServer, RaftkvServer, Session, identify

from raftkv.addresses import free_ports

pytestmark = pytest.mark.timeout(120)


def add_a_voter(server) -> tuple[int, float, str, bool]:
    """member add of a peer that never starts: (rc, seconds, output, listed after)."""
    session = Session(server, identify(server))
    (port,) = free_ports(1)
    began = time.monotonic()
    # a command timeout past the server's 5 s, so that its answer is seen
    r = session.ctl("--command-timeout=10s", "member", "add", "new", f"--peer-urls=http://127.0.0.1:{port}",
                    record=False, timeout=30)
    took = time.monotonic() - began
    listed = session.ctl("member", "list", record=False)
    return r.rc, took, r.out + r.err, f"127.0.0.1:{port}" in listed.out


@pytest.mark.skipif(not os.path.exists(ETCD_BIN), reason=ETCD_MISSING)
def test_a_voter_added_to_a_one_member_cluster(tmp_path):
    answers = {}
    for kind, server_class in (("etcd", EtcdServer), ("raftkv", RaftkvServer)):
        server = server_class(tmp_path / kind)
        try:
            server.wait_ready()
            answers[kind] = add_a_voter(server)
        finally:
            server.stop()
    rc, took, output, listed = answers["etcd"]
    assert rc == 0 and "added to cluster" in output and took < 3 and listed, answers["etcd"]
    # raftkv: the configuration entry needs the new member to commit
    rc, took, output, listed = answers["raftkv"]
    assert rc != 0 and "request timed out" in output and listed, answers["raftkv"]
