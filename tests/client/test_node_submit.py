"""Node.submit: writes and one-key reads start without a waiting thread and
finish on the Raft thread; ranges are left to execute."""

from __future__ import annotations

import threading

import pytest

import raftkv
from raftkv.client import ops
from raftkv.errors import RaftKVError

pytestmark = pytest.mark.timeout(60)


def submitted(kv, request):
    finished = threading.Event()
    outcome: list = []

    def done(response, error):
        outcome.append((response, error, threading.current_thread().name))
        finished.set()

    started = kv.submit(request, done)
    if started:
        assert finished.wait(10)
    return started, outcome


def test_writes_and_one_key_reads_are_submitted_and_ranges_are_not(tmp_path):
    with raftkv.open(str(tmp_path / "n")) as kv:
        started, outcome = submitted(kv, ops.put("a", "1"))
        assert started and len(outcome) == 1
        response, error, thread = outcome[0]
        assert error is None and response.revision == kv.get("a").mod_revision
        assert thread != threading.current_thread().name
        started, outcome = submitted(kv, ops.txn([ops.value("a") == "1"], [ops.put("b", "2")], []))
        assert started and outcome[0][0].succeeded and kv.get("b").value == b"2"
        for serializable in (False, True):
            started, outcome = submitted(kv, ops.get("a", serializable=serializable))
            assert started and outcome[0][1] is None and [kv.value for kv in outcome[0][0].kvs] == [b"1"]
        started, outcome = submitted(kv, ops.get("a", revision=99))
        assert started and outcome[0][0] is None and isinstance(outcome[0][1], RaftKVError)  # a future revision
        assert submitted(kv, ops.get("a", prefix=True)) == (False, [])
        assert submitted(kv, ops.txn([], [ops.get("a")], [])) == (False, [])  # read-only: a read index


def test_a_bad_write_is_refused_before_the_log(tmp_path):
    with raftkv.open(str(tmp_path / "n")) as kv:
        with pytest.raises(RaftKVError):
            kv.submit(ops.put(b"", "1"), lambda response, error: None)
