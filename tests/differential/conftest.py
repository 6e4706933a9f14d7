"""Fixtures: a real etcd 3.4 per test, and the driver process that talks to it.

The etcd binary is /usr/bin/etcd (Debian's etcd-server 3.4), or $RAFTKV_DIFF_ETCD.

Every test that takes ``differ`` gets a brand-new single-member etcd (so its
revisions start at 1 like a fresh raftkv store's) listening on free loopback
ports, with its data dir under pytest's tmp dir.  The server and its whole
process group are killed when the test ends, pass or fail.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
for p in (str(REPO_ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from difftools import ETCD_BIN, Differ, DriverProcess, EtcdFactory  # noqa: E402

SKIP_REASON = "etcd-server not installed: apt-get install etcd-server"


@pytest.fixture(scope="session")
def etcd_factory(tmp_path_factory):
    if not os.path.exists(ETCD_BIN):
        pytest.skip(SKIP_REASON)
    if importlib.util.find_spec("pyetcd") is None:  # found, not imported (see etcd_driver.py)
        pytest.skip("etcd-sdk-python (module pyetcd) not installed: pip install etcd-sdk-python")
    factory = EtcdFactory(tmp_path_factory.mktemp("etcd"))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="session")
def etcd_driver(etcd_factory):
    driver = DriverProcess()
    try:
        yield driver
    finally:
        driver.close()


@pytest.fixture
def etcd_server(etcd_factory):
    server = etcd_factory.claim()
    try:
        yield server
    finally:
        etcd_factory.release(server)


@pytest.fixture
def differ(etcd_driver, etcd_server):
    d = Differ(etcd_driver, etcd_server)
    try:
        yield d
    finally:
        etcd_driver.call({"op": "close"})
