from __future__ import annotations

import pytest

import raftkv
from raftkv.objects import ObjectStore

from .helpers import FakeClock


@pytest.fixture
def kv():
    store = raftkv.open()
    yield store
    store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(kv, clock) -> ObjectStore:
    return ObjectStore(kv, clock=clock)
