"""Fixtures for the MVCC state-machine tests (helpers live in mvcc_helpers.py)."""

from __future__ import annotations

import pytest

from raftkv.mvcc import KVStore


@pytest.fixture
def store() -> KVStore:
    """A fresh store with etcd's default limits."""
    return KVStore()
