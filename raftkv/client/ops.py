"""Building requests from friendly arguments.

Keys and values may be given as ``str`` (encoded as UTF-8) or ``bytes``.
``prefix=True`` and ``from_key=True`` follow etcdctl's --prefix and
--from-key, including their meaning for an empty key (every key).
"""

from __future__ import annotations

from raftkv.mvcc.index import ALL_KEYS_FROM, prefix_end
from raftkv.mvcc.requests import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    RequestOp,
    SortOrder,
    SortTarget,
    TxnRequest,
)

Bytes = bytes | str


def to_bytes(data: Bytes) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"expected bytes or str, got {type(data).__name__}")


def key_span(
    key: Bytes, range_end: Bytes | None = None, *, prefix: bool = False, from_key: bool = False
) -> tuple[bytes, bytes]:
    """(key, range_end) in etcd's convention for the selection asked for."""
    k = to_bytes(key)
    if prefix and from_key:
        raise ValueError("prefix and from_key are mutually exclusive")
    if (prefix or from_key) and range_end is not None:
        raise ValueError("range_end cannot be combined with prefix or from_key")
    if prefix:
        return (k, prefix_end(k)) if k else (ALL_KEYS_FROM, ALL_KEYS_FROM)
    if from_key:
        return (k or ALL_KEYS_FROM, ALL_KEYS_FROM)
    return k, to_bytes(range_end) if range_end is not None else b""


def _enum(kind, value):
    try:
        return kind[value.upper()] if isinstance(value, str) else kind(value)
    except (KeyError, ValueError):
        choices = ", ".join(member.name.lower() for member in kind)
        raise ValueError(f"unknown {kind.__name__} {value!r}: choose one of {choices}") from None


def get(
    key: Bytes,
    range_end: Bytes | None = None,
    *,
    prefix: bool = False,
    from_key: bool = False,
    limit: int = 0,
    revision: int = 0,
    sort_target: SortTarget | str = SortTarget.KEY,
    sort_order: SortOrder | str = SortOrder.NONE,
    serializable: bool = False,
    keys_only: bool = False,
    count_only: bool = False,
    min_mod_revision: int = 0,
    max_mod_revision: int = 0,
    min_create_revision: int = 0,
    max_create_revision: int = 0,
) -> RangeRequest:
    k, end = key_span(key, range_end, prefix=prefix, from_key=from_key)
    return RangeRequest(
        key=k,
        range_end=end,
        limit=limit,
        revision=revision,
        sort_order=_enum(SortOrder, sort_order),
        sort_target=_enum(SortTarget, sort_target),
        serializable=serializable,
        keys_only=keys_only,
        count_only=count_only,
        min_mod_revision=min_mod_revision,
        max_mod_revision=max_mod_revision,
        min_create_revision=min_create_revision,
        max_create_revision=max_create_revision,
    )


def put(
    key: Bytes,
    value: Bytes = b"",
    *,
    lease: int = 0,
    prev_kv: bool = False,
    ignore_value: bool = False,
    ignore_lease: bool = False,
) -> PutRequest:
    return PutRequest(
        key=to_bytes(key),
        value=to_bytes(value),
        lease=int(lease),
        prev_kv=prev_kv,
        ignore_value=ignore_value,
        ignore_lease=ignore_lease,
    )


def delete(
    key: Bytes,
    range_end: Bytes | None = None,
    *,
    prefix: bool = False,
    from_key: bool = False,
    prev_kv: bool = False,
) -> DeleteRangeRequest:
    k, end = key_span(key, range_end, prefix=prefix, from_key=from_key)
    return DeleteRangeRequest(key=k, range_end=end, prev_kv=prev_kv)


def txn(
    compare: list[Compare] | None = None,
    success: list[RequestOp] | None = None,
    failure: list[RequestOp] | None = None,
) -> TxnRequest:
    return TxnRequest(list(compare or []), list(success or []), list(failure or []))


class _CompareTarget:
    """``version("k") == 3`` builds the Compare etcd evaluates in a txn."""

    def __init__(self, target: CompareTarget, key: Bytes, range_end: Bytes | None,
                 prefix: bool, from_key: bool) -> None:
        self.target = target
        self.key, self.range_end = key_span(key, range_end, prefix=prefix, from_key=from_key)

    def _make(self, result: CompareResult, operand: object) -> Compare:
        if self.target == CompareTarget.VALUE:
            operand = to_bytes(operand)  # type: ignore[arg-type]
        elif not isinstance(operand, int) or isinstance(operand, bool):
            raise TypeError(f"{self.target.name.lower()} compares need an int operand")
        return Compare(self.key, self.target, result, operand, self.range_end)  # type: ignore[arg-type]

    def __eq__(self, operand: object) -> Compare:  # type: ignore[override]
        return self._make(CompareResult.EQUAL, operand)

    def __ne__(self, operand: object) -> Compare:  # type: ignore[override]
        return self._make(CompareResult.NOT_EQUAL, operand)

    def __lt__(self, operand: object) -> Compare:
        return self._make(CompareResult.LESS, operand)

    def __gt__(self, operand: object) -> Compare:
        return self._make(CompareResult.GREATER, operand)

    __hash__ = None  # type: ignore[assignment]


def _target(kind: CompareTarget):
    def build(key: Bytes, range_end: Bytes | None = None, *, prefix: bool = False,
              from_key: bool = False) -> _CompareTarget:
        return _CompareTarget(kind, key, range_end, prefix, from_key)

    build.__name__ = kind.name.lower()
    build.__doc__ = f"Compare the {kind.name.lower()} of a key (or of every key in a range)."
    return build


value = _target(CompareTarget.VALUE)
version = _target(CompareTarget.VERSION)
create_revision = _target(CompareTarget.CREATE)
mod_revision = _target(CompareTarget.MOD)
lease = _target(CompareTarget.LEASE)
