"""Lost-write and watch-guarantee checks flag what they should."""

from __future__ import annotations

import pytest

from bench.checks import AckedWrite, Ev, lost_writes, watch_violations

pytestmark = pytest.mark.timeout(30)

HISTORY = [
    Ev(2, "a", "PUT", "1"),
    Ev(3, "b", "PUT", "2"),
    Ev(4, "a", "PUT", "3"),
    Ev(4, "b", "DELETE", None),     # one txn, two events
    Ev(5, "c", "PUT", "4"),
    Ev(6, "a", "PUT", "5"),
]


def batches(*revs_per_batch):
    by_rev = {}
    for e in HISTORY:
        by_rev.setdefault(e.revision, []).append(e)
    return [[e for r in revs for e in by_rev[r]] for revs in revs_per_batch]


# ---- lost writes ---------------------------------------------------------------

def test_no_lost_writes():
    acked = [AckedWrite("a", "1", 2), AckedWrite("b", "2", 3), AckedWrite("a", "5", 6), AckedWrite("c", "4", 0)]
    assert lost_writes(acked, HISTORY) == []


def test_lost_write_flagged():
    acked = [AckedWrite("a", "1", 2), AckedWrite("a", "9", 7)]
    assert lost_writes(acked, HISTORY) == [AckedWrite("a", "9", 7)]


def test_write_with_wrong_value_at_its_revision_flagged():
    assert lost_writes([AckedWrite("a", "other", 2)], HISTORY) == [AckedWrite("a", "other", 2)]


def test_write_without_revision_missing_flagged():
    assert lost_writes([AckedWrite("c", "nope", 0)], HISTORY) == [AckedWrite("c", "nope", 0)]


# ---- watch ---------------------------------------------------------------------

def test_complete_watch_is_clean():
    assert watch_violations(HISTORY, batches([2, 3], [4], [5, 6]), until_revision=6) == []


def test_watch_from_revision_with_range():
    got = [[e for e in HISTORY if e.key == "a" and e.revision >= 4]]
    assert watch_violations(HISTORY, got, start_revision=4, in_range=lambda k: k == "a", until_revision=6) == []


def test_resumed_watch_is_clean():
    # stream broke after revision 3; a new stream started at 4
    assert watch_violations(HISTORY, batches([2], [3]) + batches([4, 5], [6])) == []


def test_reordered_events_flagged():
    got = batches([2], [4], [3], [5], [6])
    problems = watch_violations(HISTORY, got)
    assert any(p.startswith("reordered") for p in problems), problems


def test_duplicate_event_flagged():
    # resumed from the wrong revision: 3 delivered twice
    got = batches([2], [3]) + batches([3], [4], [5, 6])
    problems = watch_violations(HISTORY, got)
    assert any(p.startswith("duplicate") for p in problems), problems


def test_gap_flagged():
    got = batches([2], [3], [5], [6])
    problems = watch_violations(HISTORY, got)
    assert any(p.startswith("gap") and "revision 4" in p for p in problems), problems


def test_split_revision_flagged():
    b = batches([4])[0]
    got = batches([2, 3]) + [[b[0]], [b[1]]] + batches([5, 6])
    problems = watch_violations(HISTORY, got)
    assert any(p.startswith("not atomic") for p in problems), problems


def test_incomplete_watch_flagged():
    problems = watch_violations(HISTORY, batches([2, 3], [4]), until_revision=6)
    assert any(p.startswith("incomplete") for p in problems), problems


def test_wrong_and_unexpected_events_flagged():
    got = batches([2, 3], [4], [5, 6])
    got[2][0] = Ev(5, "c", "PUT", "tampered")
    got.append([Ev(7, "z", "PUT", "x")])
    problems = watch_violations(HISTORY, got)
    assert any(p.startswith("wrong event") for p in problems), problems
    assert any(p.startswith("unexpected") for p in problems), problems
