"""The checks besides linearizability, all against the final history.

The final history is the store's own record of every change under the
benchmark's prefix, replayed after the run by a watch from revision 1: a list
of :class:`Ev` in revision order (several events share a revision when one txn
made them).

- :func:`lost_writes`: every acknowledged write (a put, a successful CAS) is in
  the final history at the revision its response named, with its value.
- :func:`watch_violations`: what one watcher received (possibly over several
  streams, each resumed from the revision after the last one it saw) is exactly
  the final history from its start revision on: ordered, each event once, each
  revision's events in one response (atomic), nothing skipped (no gaps), and
  every event as the store recorded it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ev:
    revision: int
    key: Hashable
    type: str = "PUT"        # "PUT" | "DELETE"
    value: Any = None


@dataclass(frozen=True)
class AckedWrite:
    key: Hashable
    value: Any
    revision: int            # 0 if the response did not say


def lost_writes(acked: Iterable[AckedWrite], history: Iterable[Ev]) -> list[AckedWrite]:
    """The acknowledged writes missing from the final history."""
    at = {(e.revision, e.key): e for e in history}
    by_value = {(e.key, e.value) for e in at.values() if e.type == "PUT"}
    lost = []
    for w in acked:
        if w.revision:
            e = at.get((w.revision, w.key))
            if e is None or e.type != "PUT" or e.value != w.value:
                lost.append(w)
        elif (w.key, w.value) not in by_value:
            lost.append(w)
    return lost


def watch_violations(history: list[Ev], responses: list[list[Ev]], start_revision: int = 1,
                     in_range=lambda key: True, until_revision: int | None = None) -> list[str]:
    """Violations of etcd's watch guarantees by one watcher.

    ``responses``: the batches it received, in order (several streams
    concatenated when it resumed). ``until_revision``: the revision it must
    have reached (default: only what it received up to its last event is
    checked for gaps).
    """
    problems: list[str] = []
    seen: set[tuple[int, Hashable]] = set()
    done_revisions: set[int] = set()    # revisions of earlier responses
    last_rev = 0
    delivered: list[Ev] = []
    for n, batch in enumerate(responses):
        batch_revisions = set()
        for e in batch:
            if e.revision < last_rev:
                problems.append(f"reordered: response {n} has revision {e.revision} after {last_rev}")
            if (e.revision, e.key) in seen:
                problems.append(f"duplicate: revision {e.revision} key {e.key!r} delivered again in response {n}")
                continue
            if e.revision in done_revisions:
                problems.append(f"not atomic: revision {e.revision} split across responses (again in {n})")
            seen.add((e.revision, e.key))
            batch_revisions.add(e.revision)
            last_rev = max(last_rev, e.revision)
            delivered.append(e)
        done_revisions |= batch_revisions

    expected = [e for e in history if e.revision >= start_revision and in_range(e.key)]
    horizon = last_rev if until_revision is None else until_revision
    by_id = {(e.revision, e.key): e for e in expected}
    for e in delivered:
        want = by_id.get((e.revision, e.key))
        if want is None:
            problems.append(f"unexpected: revision {e.revision} key {e.key!r} is not in the history")
        elif want != e:
            problems.append(f"wrong event: got {e}, history has {want}")
    for e in expected:
        if e.revision <= horizon and (e.revision, e.key) not in seen:
            if e.revision <= last_rev:
                problems.append(f"gap: revision {e.revision} key {e.key!r} never delivered")
            else:
                problems.append(f"incomplete: stopped at revision {last_rev}, history goes on to {horizon}")
                break
    return problems
