"""bench.profile: py-spy's folded stacks summarized per function."""

from __future__ import annotations

from bench.profile import summarize

FOLDED = """\
process 1:"python -m raftkv";thread (0x1);run (threading.py:10);_onTick (pysyncobj/syncobj.py:5);sync (/x/raftkv/raft/storage.py:40) 6
process 1:"python -m raftkv";thread (0x1);run (threading.py:10);_onTick (pysyncobj/syncobj.py:7) 2
process 1:"python -m raftkv";thread (0x2);run (threading.py:10);select (selectors.py:3) 2
"""


def test_own_and_total_shares_per_function():
    summary = summarize(FOLDED)
    assert summary["samples"] == 10
    own = {label: (o, t) for label, o, t in summary["own"]}
    assert own["sync (raftkv/raft/storage.py)"] == (0.6, 0.6)
    assert own["_onTick (pysyncobj/syncobj.py)"] == (0.2, 0.8)
    assert own["select (selectors.py)"] == (0.2, 0.2)
    assert dict(summary["total"])["run (threading.py)"] == 1.0
