"""etcdctl watch (history, live, --prefix, --rev, --prev-kv, -i, exec) against raftkv and etcd.

Each watch runs as a real ``etcdctl watch`` subprocess whose stdout lines are
read with timeouts; it is terminated (and its process group killed) when the
scenario ends, pass or fail.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from interop_tools import Session, run_both, run_on_seeded, seeded_pair

pytestmark = pytest.mark.timeout(90)

# etcdctl prints nothing when a watch is created; give it this long to register
# before writing (only live tests need it; history tests use --rev).
REGISTER_WAIT = 1.0


def history(s: Session) -> None:
    s.ctl("put", "w1", "a")       # 2
    s.ctl("put", "w1", "b")       # 3
    s.ctl("put", "w2", "c")       # 4
    s.ctl("put", "other", "o")    # 5
    s.ctl("del", "w1")            # 6
    s.ctl("txn", input='\nput w3 x\nput w4 y\n\n\n')          # 7: two events, one revision
    s.ctl("del", "w", "--prefix")                              # 8: w2, w3, w4 deleted at once


@pytest.fixture(scope="module")
def seeded(pool):
    """etcd and raftkv with ``history`` applied; watches with --rev only read it."""
    with seeded_pair(pool, history) as servers:
        yield servers


def watch_lines(s: Session, args: list[str], n: int, label: str | None = None, timeout: float = 10.0):
    with s.bg("watch", *args) as w:
        lines = w.read_lines(n, timeout=timeout)
        lines += w.drain(0.3)     # nothing more expected; catch extras
        if os.environ.get("INTEROP_SHOW"):
            print(f"watch {args}: {len(lines)} lines")
        w.terminate()
        s.record_lines(label or "watch " + " ".join(args), lines, w.stderr)
        return lines


# simple output: 3 lines per event (type, key, value); with --prev-kv 5 for a
# put that overwrote something and for deletes.
HISTORY_WATCHES = [
    (["w1", "--rev=2"], 9),
    (["w1", "--rev=2", "--prev-kv"], 13),
    (["w", "--prefix", "--rev=2"], 27),
    (["w", "--prefix", "--rev=4", "--prev-kv"], 29),
    (["w1", "w3", "--rev=1"], 15),                      # range [w1, w3)
    (["w3", "--rev=7"], 6),
    (["", "--prefix", "--rev=5"], 21),
    (["other", "--rev=6"], 0),                         # nothing after rev 6 for it
    (["w3", "--rev=7", "--hex"], 6),
    (["w2", "--rev=4", "--prev-kv", "-w", "fields"], 24),  # one header for both replayed events
]


def _id(case) -> str:
    args = case.values[0] if hasattr(case, "values") else case[0]
    return " ".join(args)


@pytest.mark.parametrize("args,n", HISTORY_WATCHES, ids=[_id(c) for c in HISTORY_WATCHES])
def test_watch_history_simple(seeded, args, n):
    run_on_seeded(seeded, lambda s: watch_lines(s, args, n))


def flatten_events(lines: list[str]) -> list[dict]:
    """Every event of every JSON watch response, in order, without the response headers."""
    events = []
    for line in lines:
        resp = json.loads(line)
        assert not resp["Canceled"], line
        events.extend(resp["Events"])
    return events


@pytest.mark.parametrize("args", [["w", "--prefix", "--rev=2"], ["w", "--prefix", "--rev=3", "--prev-kv"]],
                         ids=["prefix", "prefix-prev-kv"])
def test_watch_history_json_events(seeded, args):
    """The events a historical watch delivers (-w json), compared event by event."""
    def scenario(s: Session):
        with s.bg("watch", "-w", "json", *args) as w:
            deadline = time.monotonic() + 10
            lines = []
            while time.monotonic() < deadline and len(flatten_events(lines)) < 9 - (args[-1] == "--prev-kv"):
                lines += w.read_lines(1, timeout=max(0.1, deadline - time.monotonic()))
            lines += w.drain(0.3)
            w.terminate()
        s.note("events", s.norm(json.dumps(flatten_events(lines))))
    run_on_seeded(seeded, scenario)


def test_watch_history_json_responses(seeded):
    """The raw -w json lines of a catch-up watch: how events are grouped into responses."""
    def scenario(s: Session):
        with s.bg("watch", "-w", "json", "w", "--prefix", "--rev=2") as w:
            lines = w.read_lines(1, timeout=10)
            lines += w.drain(0.5)
            w.terminate()
            s.record_lines("watch -w json w --prefix --rev=2", lines, w.stderr)
    run_on_seeded(seeded, scenario)


def test_watch_live_json(pair):
    """Live events, one response per revision, exactly as etcd sends them."""
    def scenario(s: Session):
        s.ctl("put", "before", "0")
        with s.bg("watch", "-w", "json", "live", "--prefix", "--prev-kv") as w:
            time.sleep(REGISTER_WAIT)
            s.ctl("put", "live/a", "1")
            s.ctl("put", "live/a", "2")
            s.ctl("put", "not-live", "x")
            s.ctl("txn", input='\nput live/b 1\nput live/c 1\nput elsewhere 1\n\n\n')
            s.ctl("del", "live/", "--prefix")
            lines = w.read_lines(4, timeout=10)
            lines += w.drain(0.3)
            w.terminate()
            s.record_lines("watch -w json live --prefix --prev-kv", lines, w.stderr)
    run_both(pair, scenario)


def test_watch_live_simple(pair):
    def scenario(s: Session):
        with s.bg("watch", "k") as w:
            time.sleep(REGISTER_WAIT)
            s.ctl("put", "k", "v1")
            s.ctl("put", "kk", "not me")
            s.ctl("put", "k", "multi\nline")
            s.ctl("del", "k")
            lines = w.read_lines(10, timeout=10)
            lines += w.drain(0.3)
            w.terminate()
            s.record_lines("watch k", lines, w.stderr)
    run_both(pair, scenario)


def test_watch_compacted_revision(pair):
    """Watching from below the compaction revision: cancelled with etcd's message and exit code."""
    def scenario(s: Session):
        history(s)
        s.ctl("compaction", "5")
        s.ctl("watch", "w", "--prefix", "--rev=2", timeout=10)
        watch_lines(s, ["w", "--prefix", "--rev=5"], 12)   # at the compaction revision: fine
    run_both(pair, scenario)


def test_watch_compacted_revision_json(pair):
    def scenario(s: Session):
        history(s)
        s.ctl("compaction", "5")
        s.ctl("watch", "w", "--prefix", "--rev=2", "-w", "json", timeout=10)
    run_both(pair, scenario)


def test_watch_interactive(pair):
    """``watch -i``: watch commands typed on stdin, one at a time, then live writes."""
    def scenario(s: Session):
        history(s)
        with s.bg("watch", "-i", stdin=True) as w:
            w.send("watch w1 --rev=2\n")
            s.record_lines("-i: watch w1 --rev=2", w.read_lines(9, timeout=10) + w.drain(0.3))
            w.send("watch --prefix w --rev=7 --prev-kv\n")
            s.record_lines("-i: watch --prefix w --rev=7 --prev-kv",
                           w.read_lines(21, timeout=10) + w.drain(0.3))
            w.send("watch live\n")
            time.sleep(REGISTER_WAIT)
            s.ctl("put", "live", "now")
            s.record_lines("-i: watch live, then put live now", w.read_lines(3, timeout=10) + w.drain(0.3))
            w.send("watch\n")   # no key: etcdctl complains and keeps going
            s.record_lines("-i: watch (no key)", w.drain(0.5))
            w.send("bogus\n")
            s.record_lines("-i: bogus", w.drain(0.5))
            w.terminate()
            s.record_lines("-i: stderr", [], w.stderr)
    run_both(pair, scenario)


def test_watch_exec_command_live(pair):
    """``watch KEY -- CMD``: etcdctl runs CMD per event with ETCD_WATCH_* set (live events)."""
    def scenario(s: Session):
        s.ctl("put", "k", "0")
        with s.bg("watch", "k", "--", "sh", "-c",
                  'echo "$ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE"') as w:
            time.sleep(REGISTER_WAIT)
            s.ctl("put", "k", "1")
            s.ctl("put", "k", "2")
            s.ctl("del", "k")
            lines = w.read_lines(11, timeout=10) + w.drain(0.3)
            w.terminate()
            s.record_lines("watch k -- sh -c echo ...", lines, w.stderr)
    run_both(pair, scenario)


def test_watch_exec_command_history(seeded):
    """``watch KEY --rev=N -- CMD`` over past events."""
    run_on_seeded(seeded, lambda s: watch_lines(
        s, ["w1", "--rev=2", "--", "sh", "-c",
            'echo "$ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE"'],
        11, label="watch w1 --rev=2 -- sh -c echo ..."))
