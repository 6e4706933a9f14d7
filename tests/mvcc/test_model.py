"""KVStore against the naive model in model.py: random put / delete / txn /
compact / range sequences must give the same results, the same errors and
the same revisions, and every still-readable past revision must read the same.

Keys come from a tiny alphabet (with prefixes of each other) so that txns
collide, ranges overlap and compares see both present and missing keys.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from raftkv.errors import (
    Compacted,
    DuplicateKey,
    FutureRevision,
    KeyNotFound,
    RaftKVError,
    ValueProvided,
)
from raftkv.mvcc import (
    CompactionRequest,
    CompactionResponse,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    KVStore,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)

from model import FROM_KEY, Model, effective_sort_order, sort_value

KEYS = [b"a", b"ab", b"b", b"ba", b"c"]
# "" = single key, "\0" = from key; the rest include empty and inverted intervals
RANGE_ENDS = [b"", b"", b"", FROM_KEY, b"a", b"ab", b"b", b"b\x00", b"ba", b"c", b"d"]
VALUES = [b"", b"x", b"y"]

keys = st.sampled_from(KEYS)
range_ends = st.sampled_from(RANGE_ENDS)
wide_range_ends = st.sampled_from([FROM_KEY, b"c", b"d"])
values = st.sampled_from(VALUES)


# ---- request strategies (revision-dependent ones take the current revision) ----


def sometimes(strategy: st.SearchStrategy, otherwise, one_in: int) -> st.SearchStrategy:
    """``strategy`` about one time in ``one_in``, else the constant ``otherwise``."""
    return st.integers(1, one_in).flatmap(lambda n: strategy if n == 1 else st.just(otherwise))


def put_requests() -> st.SearchStrategy[PutRequest]:
    plain = st.builds(PutRequest, key=keys, value=values, prev_kv=st.booleans())
    keep_value = st.builds(
        PutRequest, key=keys, value=st.just(b""), prev_kv=st.booleans(),
        ignore_value=st.just(True),
    )
    return st.integers(1, 8).flatmap(lambda n: keep_value if n == 1 else plain)


def delete_requests() -> st.SearchStrategy[DeleteRangeRequest]:
    return st.builds(
        DeleteRangeRequest, key=keys, range_end=sometimes(range_ends, b"", 2),
        prev_kv=st.booleans(),
    )


def revisions(rev: int) -> st.SearchStrategy[int]:
    """0 (= now) two times in three, else anything from -1 to two past ``rev``."""
    return sometimes(st.integers(-1, rev + 2), 0, 3)


def filter_revisions(rev: int) -> st.SearchStrategy[int]:
    return sometimes(st.integers(1, rev + 1), 0, 8)


def range_requests(rev: int) -> st.SearchStrategy[RangeRequest]:
    return st.builds(
        RangeRequest,
        key=keys,
        range_end=st.one_of(range_ends, wide_range_ends),
        limit=sometimes(st.integers(-1, 3), 0, 2),
        revision=revisions(rev),
        sort_order=st.sampled_from(SortOrder),
        sort_target=st.sampled_from(SortTarget),
        keys_only=st.booleans(),
        count_only=sometimes(st.just(True), False, 6),
        min_mod_revision=filter_revisions(rev),
        max_mod_revision=filter_revisions(rev),
        min_create_revision=filter_revisions(rev),
        max_create_revision=filter_revisions(rev),
    )


def compares(rev: int, numbers: list[int]) -> st.SearchStrategy[Compare]:
    """``numbers``: versions and revisions the live keys have, so that compares
    land on, just above and just below real values."""
    compare_ends = st.sampled_from([b"", b"", b"", FROM_KEY, b"b", b"c"])
    by_value = st.builds(
        Compare, key=keys, target=st.just(CompareTarget.VALUE),
        result=st.sampled_from(CompareResult), operand=values, range_end=compare_ends,
    )
    by_number = st.builds(
        Compare, key=keys,
        target=st.sampled_from([CompareTarget.VERSION, CompareTarget.CREATE, CompareTarget.MOD]),
        result=st.sampled_from(CompareResult),
        operand=st.one_of(st.sampled_from(numbers), st.integers(0, rev + 1)),
        range_end=compare_ends,
    )
    return st.one_of(by_value, by_number)


def interesting_numbers(model: Model) -> list[int]:
    numbers = {0, 1, 2}
    for kv in model.current.values():
        for n in (kv.version, kv.create_revision, kv.mod_revision):
            numbers.update((n - 1, n, n + 1))
    return sorted(numbers)


def txn_requests(rev: int, numbers: list[int], depth: int = 2) -> st.SearchStrategy[TxnRequest]:
    ops = [range_requests(rev), put_requests(), put_requests(), delete_requests()]
    if depth > 0:
        ops.append(txn_requests(rev, numbers, depth - 1))
    op = st.one_of(*ops)
    guards = st.lists(compares(rev, numbers), min_size=1, max_size=3)
    return st.builds(
        TxnRequest,
        compare=st.integers(1, 5).flatmap(lambda n: st.just([]) if n == 1 else guards),
        success=st.lists(op, max_size=3),
        failure=st.lists(op, max_size=3),
    )


# ---- comparing responses ------------------------------------------------------------


def assert_range_equal(actual: RangeResponse, expected, request: RangeRequest) -> None:
    assert type(actual) is RangeResponse
    assert (actual.revision, actual.count, actual.more) == (
        expected.revision, expected.count, expected.more,
    ), (actual, expected)
    if request.sort_target == SortTarget.KEY or effective_sort_order(request) == SortOrder.NONE:
        assert actual.kvs == expected.kvs
        return
    # etcd's sort.Sort is not stable: kvs that tie on the target may come in
    # any order, and a limit may cut any of them. Everything else is exact.
    assert len(actual.kvs) == len(expected.kvs), (actual, expected)
    target = request.sort_target
    assert [sort_value(kv, target) for kv in actual.kvs] == [
        sort_value(kv, target) for kv in expected.kvs
    ], (actual, expected)
    assert len({kv.key for kv in actual.kvs}) == len(actual.kvs)
    for kv in actual.kvs:
        assert kv in expected.candidates, (kv, expected)


def assert_response_equal(actual, expected, request) -> None:
    if isinstance(request, RangeRequest):
        assert_range_equal(actual, expected, request)
    elif isinstance(request, PutRequest):
        assert type(actual) is PutResponse
        assert actual == expected
    elif isinstance(request, DeleteRangeRequest):
        assert type(actual) is DeleteRangeResponse
        assert actual == expected
    elif isinstance(request, TxnRequest):
        assert type(actual) is TxnResponse
        assert (actual.revision, actual.succeeded) == (expected.revision, expected.succeeded)
        ops = request.success if expected.succeeded else request.failure
        assert len(actual.responses) == len(expected.responses) == len(ops)
        for a, e, op in zip(actual.responses, expected.responses, ops):
            assert_response_equal(a, e, op)
    else:
        raise AssertionError(f"unexpected request {request!r}")


def outcome(call):
    try:
        return call(), None
    except RaftKVError as exc:
        return None, type(exc)


# ---- the state machine ------------------------------------------------------------------


class KVStoreAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = KVStore()
        self.model = Model()

    def run_both(self, request, store_call, model_call, use_apply: bool):
        """Run the request on the model (on a copy) and on the store; the
        errors must be the same type; returns (actual, expected)."""
        pristine = copy.deepcopy(request)
        expected, expected_error = outcome(lambda: model_call(copy.deepcopy(request)))
        before = self.store.revision
        if use_apply:
            actual, actual_error = outcome(lambda: self.store.apply(request))
        else:
            actual, actual_error = outcome(lambda: store_call(request))
        assert request == pristine, "the store modified its request"
        assert actual_error is expected_error, (request, actual, actual_error, expected_error)
        if actual_error is not None:
            assert self.store.revision == before, "a failed request changed the revision"
        return actual, expected

    @initialize(data=st.data())
    def seed(self, data):
        """Start from a few keys so that early reads have something to find."""
        for key in data.draw(st.lists(keys, max_size=6)):
            request = PutRequest(key, data.draw(values))
            actual, expected = self.run_both(request, self.store.put, self.model.put, False)
            assert_response_equal(actual, expected, request)

    @rule(data=st.data(), use_apply=st.booleans())
    def put(self, data, use_apply):
        request = data.draw(put_requests())
        actual, expected = self.run_both(request, self.store.put, self.model.put, use_apply)
        if expected is not None:
            assert_response_equal(actual, expected, request)

    @rule(data=st.data(), use_apply=st.booleans())
    def put_another(self, data, use_apply):
        self.put(data, use_apply)  # puts twice as often as the other requests

    @rule(data=st.data(), use_apply=st.booleans())
    def delete(self, data, use_apply):
        request = data.draw(delete_requests())
        actual, expected = self.run_both(
            request, self.store.delete_range, self.model.delete_range, use_apply
        )
        if expected is not None:
            assert_response_equal(actual, expected, request)

    @rule(data=st.data(), use_apply=st.booleans())
    def txn(self, data, use_apply):
        request = data.draw(txn_requests(self.model.revision, interesting_numbers(self.model)))
        actual, expected = self.run_both(request, self.store.txn, self.model.txn, use_apply)
        if expected is not None:
            assert_response_equal(actual, expected, request)

    @rule(data=st.data(), use_apply=st.booleans())
    def range(self, data, use_apply):
        request = data.draw(range_requests(self.model.revision))
        actual, expected = self.run_both(request, self.store.range, self.model.range, use_apply)
        if expected is not None:
            assert_range_equal(actual, expected, request)

    @rule(data=st.data(), use_apply=st.booleans())
    def compact(self, data, use_apply):
        model = self.model
        lowest_valid = max(model.compact_revision + 1, 0)
        anything = st.integers(-1, model.revision + 2)  # often compacted or future
        if lowest_valid <= model.revision:
            valid = st.integers(lowest_valid, model.revision)
            revision = data.draw(st.one_of(valid, valid, valid, anything))
        else:
            revision = data.draw(anything)
        request = CompactionRequest(revision)
        actual, expected = self.run_both(
            request, self.store.compact, lambda r: self.model.compact(r.revision), use_apply
        )
        if expected is not None:
            assert actual == CompactionResponse(revision=expected)

    @invariant()
    def every_readable_revision_matches(self):
        store, model = self.store, self.model
        assert store.revision == model.revision
        assert store.compact_revision == model.compact_revision
        assert store.key_count == len(model.current)
        everything = dict(key=FROM_KEY, range_end=FROM_KEY)
        for rev in model.readable_revisions():
            response = store.range(RangeRequest(**everything, revision=rev))
            wanted = sorted(model.state_at(rev).values(), key=lambda kv: kv.key)
            assert response.kvs == wanted, rev
            assert response.count == len(wanted)
            assert response.revision == model.revision
        if model.compact_revision > 1:
            with pytest.raises(Compacted):
                store.range(RangeRequest(**everything, revision=model.compact_revision - 1))
        with pytest.raises(FutureRevision):
            store.range(RangeRequest(**everything, revision=model.revision + 1))


KVStoreAgainstModel.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestKVStoreAgainstModel = KVStoreAgainstModel.TestCase


# ---- the oracle itself, on cases whose answer etcd's own tests pin down ---------------------

PUT_ABC = PutRequest(b"abc", b"def")
DEL_ABC = DeleteRangeRequest(b"abc")
DEL_IN_RANGE = DeleteRangeRequest(b"a", b"b")
DEL_OUT_OF_RANGE = DeleteRangeRequest(b"abb", b"abc")


def _then(*ops) -> TxnRequest:
    return TxnRequest(success=list(ops))


def _both_sides(op) -> TxnRequest:
    return TxnRequest(success=[op], failure=[op])


# etcd 3.4 integration/v3_grpc_test.go TestV3TxnDuplicateKeys, plus the order
# dependence of etcd's checkIntervals (a nested put before a sibling's delete passes).
DUPLICATE_KEY_CASES = [
    ([PUT_ABC, PUT_ABC], DuplicateKey),
    ([PUT_ABC, DEL_ABC], DuplicateKey),
    ([PUT_ABC, DEL_IN_RANGE], DuplicateKey),
    ([PUT_ABC, _then(DEL_IN_RANGE)], DuplicateKey),
    ([DEL_IN_RANGE, _then(PUT_ABC)], DuplicateKey),
    ([_both_sides(PUT_ABC), _both_sides(PUT_ABC)], DuplicateKey),
    ([DEL_OUT_OF_RANGE, _both_sides(PUT_ABC)], None),
    ([_then(DEL_IN_RANGE), _both_sides(DEL_IN_RANGE)], None),
    ([DEL_ABC, DEL_IN_RANGE, DEL_ABC, DEL_IN_RANGE], None),
    ([PUT_ABC, DEL_OUT_OF_RANGE], None),
    ([_then(DEL_IN_RANGE), _then(PUT_ABC)], DuplicateKey),
    ([_then(PUT_ABC), _then(DEL_IN_RANGE)], None),
    ([PUT_ABC, DeleteRangeRequest(b"a", FROM_KEY)], None),  # "\0" end: an empty interval
]


@pytest.mark.parametrize("ops, error", DUPLICATE_KEY_CASES)
def test_duplicate_key_rule_matches_etcd(ops, error):
    request = TxnRequest(success=ops)
    model, store = Model(), KVStore()
    for target in (model, store):
        if error is None:
            target.txn(copy.deepcopy(request))
        else:
            with pytest.raises(error):
                target.txn(copy.deepcopy(request))
    assert store.revision == model.revision


def test_model_basics_by_hand():
    """A few answers worked out by hand from etcd's rules, so the oracle is
    not only checked against the code it is meant to check."""
    m = Model()
    assert m.put(PutRequest(b"k", b"1")) == PutResponse(revision=2)
    r = m.put(PutRequest(b"k", b"2", prev_kv=True))
    assert r.revision == 3 and r.prev_kv.value == b"1"
    kv = m.range(RangeRequest(b"k")).kvs[0]
    assert (kv.create_revision, kv.mod_revision, kv.version, kv.value) == (2, 3, 2, b"2")
    assert m.range(RangeRequest(b"k", revision=2)).kvs[0].value == b"1"
    # deleting nothing makes no revision
    assert m.delete_range(DeleteRangeRequest(b"zz")) == DeleteRangeResponse(revision=3)
    assert m.delete_range(DeleteRangeRequest(b"k")).revision == 4
    # a re-created key starts a new generation
    m.put(PutRequest(b"k", b"3"))
    kv = m.range(RangeRequest(b"k")).kvs[0]
    assert (kv.create_revision, kv.version) == (5, 1)
    # compact: equal or lower is Compacted, beyond the head is FutureRevision
    assert m.compact(3) == 5
    with pytest.raises(Compacted):
        m.compact(3)
    with pytest.raises(FutureRevision):
        m.compact(6)
    with pytest.raises(Compacted):
        m.range(RangeRequest(b"k", revision=2))
    assert m.range(RangeRequest(b"k", revision=3)).kvs[0].value == b"2"
    # value compares on a missing key fail; version compares see zeros
    t = m.txn(TxnRequest(compare=[Compare(b"nope", CompareTarget.VALUE, CompareResult.EQUAL, b"")]))
    assert not t.succeeded and t.revision == 5
    t = m.txn(TxnRequest(compare=[Compare(b"nope", CompareTarget.VERSION, CompareResult.EQUAL, 0)]))
    assert t.succeeded
    # ignore_value needs the key, and refuses a value
    with pytest.raises(KeyNotFound):
        m.put(PutRequest(b"nope", ignore_value=True))
    with pytest.raises(ValueProvided):
        m.put(PutRequest(b"k", b"v", ignore_value=True))
    # a txn range sees the txn's own earlier writes, and reports the new revision
    t = m.txn(TxnRequest(success=[PutRequest(b"n", b"1"), RangeRequest(b"n")]))
    assert t.revision == 6 and t.responses[1].revision == 6 and t.responses[1].kvs[0].value == b"1"
    # etcd's default sort by a non-key target with a limit (and no filter)
    # sorts only the first limit+1 keys in key order
    m.put(PutRequest(b"r1", b"z"))   # 7
    m.put(PutRequest(b"r2", b"y"))   # 8
    m.put(PutRequest(b"r3", b"x"))   # 9
    r = m.range(RangeRequest(b"r", b"s", limit=1, sort_target=SortTarget.VALUE))
    assert [kv.key for kv in r.kvs] == [b"r2"] and r.more and r.count == 3
    r = m.range(RangeRequest(b"r", b"s", limit=1, sort_target=SortTarget.VALUE,
                             sort_order=SortOrder.ASCEND))
    assert [kv.key for kv in r.kvs] == [b"r3"]
    # explicit revisions in a txn are checked before anything runs
    with pytest.raises(FutureRevision):
        m.txn(TxnRequest(success=[PutRequest(b"q"), RangeRequest(b"q", revision=10)]))
    assert m.revision == 9
