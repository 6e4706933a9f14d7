"""The quota through the Python API: in memory (raftkv.open()) and durable
(raftkv.open(path), a one-member Raft node whose alarm goes through its log)."""

from __future__ import annotations

import pytest

import raftkv
from raftkv.errors import NoSpace
from raftkv.mvcc import StoreLimits
from raftkv.mvcc.requests import AlarmType

pytestmark = pytest.mark.timeout(120)


def fill_until_refused(kv) -> int:
    for i in range(1000):
        try:
            kv.put(f"k{i}", "x" * 1000)
        except NoSpace:
            return i
    raise AssertionError("a 20,000-byte quota took 1,000 puts of 1,000 bytes")


@pytest.fixture(params=["memory", "durable"])
def kv(request, tmp_path):
    limits = StoreLimits(quota_backend_bytes=20_000)
    store = raftkv.open(limits=limits) if request.param == "memory" else \
        raftkv.open(str(tmp_path / "store"), limits=limits)
    with store:
        yield store


def test_the_quota_cycle(kv):
    assert fill_until_refused(kv) == 15  # 15 x 1,258 bytes fit under 20,000
    (alarm,) = kv.alarms()
    assert alarm.alarm == AlarmType.NOSPACE and alarm.member_id == kv.status().member_id
    with pytest.raises(NoSpace):
        kv.lease(10)
    assert kv.get("k0").value == b"x" * 1000
    kv.delete("k", prefix=True)
    status = kv.status()
    kv.compact(status.revision)
    assert kv.status().db_size_in_use == 0 and kv.status().db_size == status.db_size
    kv.defragment()
    assert kv.status().db_size == 0
    with pytest.raises(NoSpace):
        kv.put("a", "b")  # the alarm stays up until disarmed
    assert kv.alarm_disarm() == [alarm]
    assert kv.alarms() == []
    kv.put("a", "b")


def test_the_alarm_survives_a_restart(tmp_path):
    path = str(tmp_path / "store")
    limits = StoreLimits(quota_backend_bytes=20_000)
    with raftkv.open(path, limits=limits) as kv:
        fill_until_refused(kv)
    with raftkv.open(path, limits=StoreLimits(quota_backend_bytes=-1)) as kv:
        # no quota now, but the alarm raised through the log is still up
        assert [a.alarm for a in kv.alarms()] == [AlarmType.NOSPACE]
        with pytest.raises(NoSpace):
            kv.put("a", "b")
        kv.alarm_disarm()
        kv.put("a", "b")
