"""One key's versions, oldest first, with deletions as tombstones.

A tombstone ends a *generation* of the key; the next put starts a new one at
version 1. Reading at a revision finds the newest version at or below it.
"""

from __future__ import annotations

from bisect import bisect_right

from raftkv.mvcc.types import KeyValue


def _mod_revision(kv: KeyValue) -> int:
    return kv.mod_revision


class KeyHistory:
    __slots__ = ("key", "versions")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.versions: list[KeyValue] = []

    def latest(self) -> KeyValue | None:
        """The live version now, or None when the key is deleted."""
        if not self.versions:
            return None
        kv = self.versions[-1]
        return None if kv.is_tombstone else kv

    def at(self, revision: int) -> KeyValue | None:
        """The live version as of ``revision``, or None."""
        versions = self.versions
        if not versions:
            return None
        if versions[-1].mod_revision <= revision:
            kv = versions[-1]
        else:
            i = bisect_right(versions, revision, key=_mod_revision) - 1
            if i < 0:
                return None
            kv = versions[i]
        return None if kv.is_tombstone else kv

    def record(self, kv: KeyValue) -> KeyValue | None:
        """Append a version; a second change in the same revision replaces
        the first, which is returned."""
        if self.versions and self.versions[-1].mod_revision == kv.mod_revision:
            replaced, self.versions[-1] = self.versions[-1], kv
            return replaced
        self.versions.append(kv)
        return None

    def compact(self, revision: int) -> list[KeyValue]:
        """Forget what no read at ``revision`` or later can see, and return it.

        Keeps the version visible at ``revision`` (unless it is a tombstone)
        and everything after it.
        """
        i = bisect_right(self.versions, revision, key=_mod_revision) - 1
        if i >= 0:
            keep_from = i + 1 if self.versions[i].is_tombstone else i
            if keep_from:
                dropped = self.versions[:keep_from]
                del self.versions[:keep_from]
                return dropped
        return []
