"""Evaluating a txn's compares against the keys they name (etcd's rules)."""

from __future__ import annotations

from collections.abc import Iterable

from raftkv.mvcc.requests import Compare, CompareResult, CompareTarget
from raftkv.mvcc.types import KeyValue

_ABSENT = KeyValue(key=b"", create_revision=0, mod_revision=0, version=0)


def _sign(a: int | bytes, b: int | bytes) -> int:
    return (a > b) - (a < b)  # type: ignore[operator]


def _holds(compare: Compare, kv: KeyValue) -> bool:
    target = compare.target
    if target == CompareTarget.VALUE:
        operand = compare.operand if isinstance(compare.operand, bytes) else b""
        order = _sign(kv.value, operand)
    else:
        operand = compare.operand if isinstance(compare.operand, int) else 0
        if target == CompareTarget.VERSION:
            actual = kv.version
        elif target == CompareTarget.CREATE:
            actual = kv.create_revision
        elif target == CompareTarget.MOD:
            actual = kv.mod_revision
        else:
            actual = kv.lease
        order = _sign(actual, operand)
    result = compare.result
    if result == CompareResult.EQUAL:
        return order == 0
    if result == CompareResult.NOT_EQUAL:
        return order != 0
    if result == CompareResult.GREATER:
        return order > 0
    return order < 0


def compare_holds(compare: Compare, kvs: Iterable[KeyValue]) -> bool:
    """True when the compare holds for every key in its range.

    A missing key compares as all zeros, except that a value compare on a
    missing key always fails: etcd cannot tell an absent value from b"".
    """
    found = False
    for kv in kvs:
        found = True
        if not _holds(compare, kv):
            return False
    if found:
        return True
    if compare.target == CompareTarget.VALUE:
        return False
    return _holds(compare, _ABSENT)
