"""kill -9 of a member's main process only, while raftkv writes a snapshot.

raftkv writes each Raft snapshot from a child it forks off the member's
process. An operator's ``kill -9 <pid>`` or the OOM killer ends that one
process, not its process group as the other kill faults do (``os.killpg``):
the fault checks that nothing of the member outlives it (a child left
running would keep its files and ports, and could rename a snapshot into
place for a log that was never trimmed; raftkv's child now dies with its
parent) and that no acknowledged write is lost.

- ``kill-main-only``: the leader's main process;
- ``kill-main-only-all``: every member's main process at once.

Every member runs with ``--snapshot-count`` ``Scenario.snapshot_count``
(KILL_MAIN_SNAPSHOT_COUNT, 500, unless given; etcd has the same flag and gets
the same value), so raftkv snapshots all the time under load. Rounds repeat from the scenario's ``fault_at`` every
``fault_interval`` seconds (later if the members are slow to come back) until
``ROUND_MARGIN`` seconds before the end of the load. A round:

1. raftkv: waits (up to ``SNAPSHOT_WAIT`` s) until a victim has a child
   (``/proc/<pid>/task/*/children``), i.e. a snapshot is being written; etcd
   has no such child and is killed at once;
2. ``os.kill(pid, SIGKILL)`` of each victim's main PID (never its group);
3. ``min(fault_delay, RESTART_DELAY)`` seconds after the kill, starts each
   victim again on the same data directory (the orphan, if it still runs, is
   left alone: that is the point) and waits ``RESTART_TIMEOUT`` s for it to
   serve and know a leader.

A victim that exits or does not serve in time is a failed restart: noted in
the round's event (``restart_failed``, its exit code and the end of its log),
counted in the result's ``restart_failures`` (which fails the run), and no
further round is injected. ``kill_leftovers`` kills whatever process of the
cluster outlived it (orphaned snapshot children included); the harness calls
it whatever happened.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from bench.scenario import KILL_MAIN_FAULTS, KILL_MAIN_SNAPSHOT_COUNT  # noqa: F401 - registered there

SNAPSHOT_WAIT = 5.0       # seconds to wait for a snapshot child before killing anyway
RESTART_DELAY = 0.5       # seconds from the kill to the restart, at most (a supervisor's pace)
RESTART_TIMEOUT = 20.0    # seconds for a restarted member to serve again
ROUND_MARGIN = 4.0        # no round starts in the load's last seconds
POLL = 0.005


def children(pid: int) -> list[int]:
    """The processes ``pid`` forked, whichever of its threads forked them."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(p) for p in f.read().split()]
        except OSError:
            continue
    return out


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[19])


def alive(proc: tuple[int, int]) -> bool:
    """Whether (pid, start time) still runs (not a zombie, not a reused pid)."""
    st = _stat(proc[0])
    return st is not None and st[0] != "Z" and st[1] == proc[1]


def _identify(pids: list[int]) -> list[tuple[int, int]]:
    return [(p, st[1]) for p in pids if (st := _stat(p)) is not None]


def cluster_processes(base_dir: str) -> list[int]:
    """Every process (not this one) whose command line names ``base_dir``:
    the members and anything they forked, orphans included (a forked child
    keeps its parent's command line)."""
    needle = os.path.abspath(base_dir).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def kill_leftovers(base_dir: str) -> list[int]:
    """SIGKILL every process of the cluster in ``base_dir`` still there
    (after the cluster stopped); returns their pids."""
    killed = []
    for pid in cluster_processes(base_dir):
        st = _stat(pid)
        if st is None or st[0] == "Z":
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    return killed


def _log_tail(path: str, lines: int = 5) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            return [line.decode(errors="replace") for line in f.read().splitlines()[-lines:]]
    except OSError:
        return []


def _wait_serving(cluster, index: int, timeout: float) -> str | None:
    """None once the member serves and knows a leader; else why not."""
    from raftkv.errors import RaftKVError

    member = cluster.members[index]
    deadline = time.monotonic() + timeout
    while True:
        code = member.process.poll()
        if code is not None:
            return f"exited with code {code}"
        try:
            if cluster.member_status(index).leader:
                return None
        except RaftKVError:
            pass
        if time.monotonic() > deadline:
            return f"not serving after {timeout:g} s"
        time.sleep(0.1)


def _wait_for_snapshot(runner, victims: list[int]) -> dict[int, list[int]]:
    """Until a victim has a child (raftkv's snapshot writer) or SNAPSHOT_WAIT
    passes; each victim's children just before the kill."""
    c = runner.cluster
    pids = {i: c.members[i].process.pid for i in victims}
    deadline = time.monotonic() + (SNAPSHOT_WAIT if runner.s.system == "raftkv" else 0.0)
    while True:
        kids = {i: children(pid) for i, pid in pids.items()}
        if any(kids.values()) or time.monotonic() >= deadline:
            return kids
        time.sleep(POLL)


def _watch_leader(runner, event: dict, term_before: int, names: dict[int, str], stop: threading.Event,
                  patience: float = 30.0) -> None:
    """Note in ``event`` when a member first names a leader elected after the
    kill (a term above ``term_before``), and which: the killed member itself
    may win again once restarted, so "a leader other than the old one" would
    not do."""
    c = runner.cluster
    deadline = time.monotonic() + patience
    while not stop.is_set() and time.monotonic() < deadline:
        for i, member in enumerate(list(c.members)):
            if not member.running:
                continue
            try:
                st = c.member_status(i, timeout=1.0)
            except Exception:  # noqa: BLE001 - down, starting, or busy
                continue
            if st.leader and st.raft_term > term_before:
                event["new_leader_at"] = runner.now()
                event["new_leader"] = names.get(st.leader, f"{st.leader:x}")
                return
        time.sleep(0.05)


def _member_ids(cluster, patience: float = 10.0) -> dict[int, str]:
    """member id -> name (ids are stable across restarts: both systems derive
    them from the peer URLs)."""
    names: dict[int, str] = {}
    deadline = time.monotonic() + patience
    while len(names) < len(cluster.members) and time.monotonic() < deadline:
        for i, member in enumerate(cluster.members):
            try:
                names[cluster.member_status(i, timeout=2.0).member_id] = member.name
            except Exception:  # noqa: BLE001 - retried
                pass
    return names


def inject(runner) -> None:
    """Rounds of kill -9 of the main PID (see the module's doc); one event a round."""
    s, c = runner.s, runner.cluster
    n = len(c.members)
    every = s.fault == "kill-main-only-all"
    last_start = s.duration - ROUND_MARGIN
    delay = min(s.fault_delay, RESTART_DELAY)
    ids = _member_ids(c)
    previous: dict | None = None
    round_no = 0
    while runner.now() <= last_start:
        round_no += 1
        leader = c.leader_index(timeout=10)
        term_before = c.member_status(leader, timeout=5).raft_term
        victims = list(range(n)) if every else [leader]
        names = [c.members[i].name for i in victims]
        event: dict = {"fault": s.fault, "round": round_no, "leader_before": c.members[leader].name,
                       "member": "all" if every else names[0], "snapshot_count": s.snapshot_count}
        waited_from = runner.now()
        kids = _wait_for_snapshot(runner, victims)
        orphans = _identify([p for i in victims for p in kids[i]])
        event["at"] = runner.now()
        for i in victims:
            os.kill(c.members[i].process.pid, signal.SIGKILL)   # this process only, not its group
        for i in victims:
            c.members[i].process.wait(timeout=10)
        runner.orphans += orphans
        event["waited_for_snapshot_s"] = event["at"] - waited_from
        event["snapshot_child_running"] = bool(orphans)
        event["children_at_kill"] = {c.members[i].name: kids[i] for i in victims if kids[i]}
        if previous is not None:   # this round's gap is not the previous one's
            previous["window_s"] = event["at"] - previous["at"]
        runner.log(f"  {event['at']:.1f}s: kill -9 of the main process of {', '.join(names)}"
                   f"{'' if every else ' (leader)'}, "
                   + (f"snapshot child{'ren' if len(orphans) > 1 else ''} {[p for p, _ in orphans]} left running"
                      if orphans else "no snapshot child running"))
        # the new leader is looked for meanwhile: the restart does not wait for it
        stop = threading.Event()
        watch = threading.Thread(target=_watch_leader, args=(runner, event, term_before, ids, stop),
                                 daemon=True, name="bench-new-leader")
        watch.start()
        time.sleep(max(0.0, event["at"] + delay - runner.now()))
        event["children_alive_at_restart"] = [p for p, t in orphans if alive((p, t))]
        for i in victims:
            c.start_member(i)
        event["restarted_at"] = runner.now()
        failed = {}
        for i in victims:
            why = _wait_serving(c, i, max(1.0, event["restarted_at"] + RESTART_TIMEOUT - runner.now()))
            if why is not None:
                failed[c.members[i].name] = {"error": why, "log_tail": _log_tail(c.members[i].log_path)}
        back = runner.now()
        event["children_alive_when_back"] = [p for p, t in orphans if alive((p, t))]
        if failed:
            stop.set()
        watch.join()
        if event.get("new_leader_at") is not None:
            event["time_to_leader_s"] = round(event["new_leader_at"] - event["at"], 3)
        runner.events.append(event)
        previous = event
        if failed:
            event["restart_failed"] = failed
            runner.log(f"  {back:.1f}s: restart FAILED: "
                       + "; ".join(f"{name}: {f['error']}" for name, f in failed.items())
                       + " - no further rounds")
            return
        event["recovered_at"] = back
        runner.log(f"  {back:.1f}s: {', '.join(names)} restarted and serving"
                   + (f" (snapshot child still running: {event['children_alive_when_back']})"
                      if event["children_alive_when_back"] else ""))
        time.sleep(max(0.0, event["at"] + s.fault_interval - runner.now()))
