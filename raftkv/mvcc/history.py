"""The changes of every revision since the last compaction, in revision order.

Watchers that start in the past, or fell behind, replay from here.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from raftkv.mvcc.types import KeyValue


class History:
    def __init__(self) -> None:
        self._revisions: list[int] = []
        self._changes: list[list[KeyValue]] = []
        # every change of the compaction revision, for a watcher that had
        # already been promised it (one that fell behind exactly there)
        self._complete_at_compaction: tuple[int, list[KeyValue]] | None = None

    def append(self, revision: int, changes: list[KeyValue]) -> None:
        self._revisions.append(revision)
        self._changes.append(changes)

    def since(self, revision: int, complete: bool = False) -> Iterator[tuple[int, list[KeyValue]]]:
        """(revision, changes) for every revision >= ``revision``, oldest first.

        With ``complete``, the compaction revision comes with all its changes,
        not only the versions compaction keeps.
        """
        i = bisect_left(self._revisions, revision)
        revisions, changes = self._revisions, self._changes
        kept = self._complete_at_compaction
        if complete and kept is not None and kept[0] == revision:
            yield kept
            if i < len(revisions) and revisions[i] == revision:
                i += 1
        while i < len(revisions):
            yield revisions[i], changes[i]
            i += 1

    def entries(self) -> list[tuple[int, list[KeyValue]]]:
        return list(zip(self._revisions, self._changes))

    def compact(self, revision: int) -> None:
        """Drop revisions below ``revision``, and at it all but live versions.

        etcd keeps, for each key, only the version visible at the compaction
        revision: a deletion at exactly that revision is not kept, nor a put
        that the same revision deleted again.
        """
        i = bisect_left(self._revisions, revision)
        del self._revisions[:i]
        del self._changes[:i]
        self._complete_at_compaction = None
        if self._revisions and self._revisions[0] == revision:
            self._complete_at_compaction = (revision, self._changes[0])
            final = {kv.key: kv for kv in self._changes[0]}
            kept = [kv for kv in self._changes[0] if final[kv.key] is kv and not kv.is_tombstone]
            if kept:
                self._changes[0] = kept
            else:
                del self._revisions[0]
                del self._changes[0]
