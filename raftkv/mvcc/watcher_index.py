"""The watcher index: which synced watchers a changed key concerns.

A write looks its keys up here instead of testing every range watcher.
Watchers fall in four groups by the shape of what they watch, each with a
lookup that costs what it finds, not what is watched:

- one key: a dict from the key;
- a prefix (``range_end`` is the prefix's end, as ``--prefix`` asks for):
  a dict from the prefix, probed once per distinct watched prefix length;
- every key from ``key`` on: the start keys in order, all those at or
  below the changed key;
- any other range [key, range_end): the start keys in order, each checked
  against its end (clients rarely ask for these; Kubernetes watches prefixes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from sortedcontainers import SortedDict

from raftkv.mvcc.index import ALL_KEYS_FROM, prefix_end


class Watching(Protocol):
    key: bytes
    range_end: bytes


W = TypeVar("W", bound=Watching)


class WatcherIndex(Generic[W]):
    def __init__(self) -> None:
        self._by_key: dict[bytes, set[W]] = {}
        self._by_prefix: dict[bytes, set[W]] = {}
        self._prefix_lengths: Counter[int] = Counter()
        self._from_key: SortedDict = SortedDict()  # start key -> set of watchers
        self._ranges: SortedDict = SortedDict()  # start key -> set of watchers
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[W]:
        for group in (self._by_key, self._by_prefix, self._from_key, self._ranges):
            for watchers in group.values():
                yield from watchers

    def add(self, watcher: W) -> None:
        group, start = self._place(watcher)
        watchers = group.get(start)
        if watchers is None:
            watchers = group[start] = set()
            if group is self._by_prefix:
                self._prefix_lengths[len(start)] += 1
        if watcher not in watchers:
            watchers.add(watcher)
            self._count += 1

    def discard(self, watcher: W) -> None:
        group, start = self._place(watcher)
        watchers = group.get(start)
        if watchers is None or watcher not in watchers:
            return
        watchers.remove(watcher)
        self._count -= 1
        if not watchers:
            del group[start]
            if group is self._by_prefix:
                self._prefix_lengths[len(start)] -= 1
                if not self._prefix_lengths[len(start)]:
                    del self._prefix_lengths[len(start)]

    def matching(self, key: bytes) -> Iterator[W]:
        """Every watcher whose range holds ``key``, each once."""
        watchers = self._by_key.get(key)
        if watchers:
            yield from watchers
        if self._by_prefix:
            by_prefix = self._by_prefix
            for length in self._prefix_lengths:
                if length <= len(key):
                    watchers = by_prefix.get(key[:length])
                    if watchers:
                        yield from watchers
        if self._from_key:
            from_key = self._from_key
            for start in from_key.irange(maximum=key):
                yield from from_key[start]
        if self._ranges:
            ranges = self._ranges
            for start in ranges.irange(maximum=key):
                for watcher in ranges[start]:
                    if key < watcher.range_end:
                        yield watcher

    def _place(self, watcher: W) -> tuple[dict, bytes]:
        key, end = watcher.key, watcher.range_end
        if not end:
            return self._by_key, key
        if end == ALL_KEYS_FROM:
            return self._from_key, key
        if end == prefix_end(key):
            return self._by_prefix, key
        return self._ranges, key
