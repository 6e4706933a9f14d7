"""Fixtures for the interop tests: fresh raftkv and real etcd servers, side by side.

``pair`` gives a test a brand-new single-member raftkv (``python -m raftkv
serve`` through LocalCluster) and a brand-new real etcd, both empty at
revision 1, both on free loopback ports with data dirs under pytest's tmp dir.
Tests run the same etcdctl commands against both and compare (see
interop_tools.run_both).  Every server process group is killed when the test
ends, pass or fail; spares started ahead are killed at session end.

A known difference (listed in the README) has a test that asserts what etcd
answers and what raftkv answers (interop_tools.run_each), so a change on
either side shows.

Environment:
  INTEROP_SHOW=1        print etcd's normalized transcript of every comparison (-s)
  INTEROP_SKIP_PERF=1   skip `etcdctl check perf --load=s` (a minute per server)
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
for p in (str(REPO_ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from interop_tools import (  # noqa: E402
    ETCD_BIN, ETCD_MISSING, ETCDCTL_BIN, ETCDCTL_MISSING, EtcdServer, RaftkvServer, Server, ServerPool,
)


@dataclass
class Pair:
    etcd: Server
    raftkv: Server


def _have_etcdctl() -> bool:
    return os.path.exists(ETCDCTL_BIN)


@pytest.fixture(scope="session")
def pool(tmp_path_factory):
    kinds = ("raftkv", "etcd") if os.path.exists(ETCD_BIN) else ("raftkv",)
    p = ServerPool(tmp_path_factory.mktemp("servers"), kinds)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def raftkv_server(pool):
    """A fresh single-member raftkv, for tests that need no etcd."""
    if not _have_etcdctl():
        pytest.skip(ETCDCTL_MISSING)
    server = pool.claim("raftkv")
    try:
        yield server
    finally:
        pool.release(server)


@pytest.fixture
def etcd_server(pool):
    if not os.path.exists(ETCD_BIN):
        pytest.skip(ETCD_MISSING)
    if not _have_etcdctl():
        pytest.skip(ETCDCTL_MISSING)
    server = pool.claim("etcd")
    try:
        yield server
    finally:
        pool.release(server)


@pytest.fixture
def pair(etcd_server, raftkv_server):
    return Pair(etcd=etcd_server, raftkv=raftkv_server)


@pytest.fixture
def raftkv_cluster3(tmp_path):
    if not _have_etcdctl():
        pytest.skip(ETCDCTL_MISSING)
    server = RaftkvServer(tmp_path / "raftkv3", size=3)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def etcd_cluster3(tmp_path):
    if not os.path.exists(ETCD_BIN):
        pytest.skip(ETCD_MISSING)
    if not _have_etcdctl():
        pytest.skip(ETCDCTL_MISSING)
    server = EtcdServer(tmp_path / "etcd3", size=3)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
