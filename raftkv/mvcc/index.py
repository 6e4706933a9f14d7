"""The ordered index: every key the store knows, in byte order."""

from __future__ import annotations

from collections.abc import Iterator

from sortedcontainers import SortedDict

from raftkv.mvcc.key_history import KeyHistory

ALL_KEYS_FROM = b"\x00"  # etcd's range_end meaning "every key >= key"


class KeyIndex:
    def __init__(self) -> None:
        self._keys: SortedDict = SortedDict()

    @classmethod
    def of(cls, histories: list[KeyHistory]) -> KeyIndex:
        """An index of these histories at once (far quicker than one insert
        each when they come in key order, as a snapshot's do)."""
        index = cls()
        index._keys = SortedDict((h.key, h) for h in histories)
        return index

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, key: bytes) -> KeyHistory | None:
        return self._keys.get(key)

    def get_or_create(self, key: bytes) -> KeyHistory:
        history = self._keys.get(key)
        if history is None:
            history = self._keys[key] = KeyHistory(key)
        return history

    def remove(self, key: bytes) -> None:
        self._keys.pop(key, None)

    def range(self, key: bytes, range_end: bytes = b"", after: bytes | None = None) -> Iterator[KeyHistory]:
        """Histories of the keys selected by etcd's (key, range_end) convention,
        from the first key greater than ``after`` when given.

        An empty ``range_end`` selects ``key`` alone, ``b"\\0"`` every key from
        ``key`` on, anything else the half-open interval [key, range_end).
        """
        if not range_end:
            history = self._keys.get(key)
            if history is not None and (after is None or key > after):
                yield history
            return
        start, inclusive = (key, True) if after is None or after < key else (after, False)
        if range_end == ALL_KEYS_FROM:
            keys = self._keys.irange(minimum=start, inclusive=(inclusive, False))
        else:
            keys = self._keys.irange(start, range_end, inclusive=(inclusive, False))
        values = self._keys
        for k in keys:
            yield values[k]

    def histories(self) -> Iterator[KeyHistory]:
        return iter(self._keys.values())


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with ``prefix`` (etcd's rule)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    # every byte is 0xff (or no prefix at all): no upper bound
    return ALL_KEYS_FROM
