"""Txn: compares, branches, nested txns, reads after writes, and etcd's checks."""

from __future__ import annotations

import pytest

from difftools import EMPTY_OP, cmp, compact, delete, get, lease_grant, lease_ttl, put, txn

pytestmark = pytest.mark.timeout(60)

RESULTS = ["EQUAL", "NOT_EQUAL", "GREATER", "LESS"]


def _setup(differ):
    differ.run([
        lease_grant(7, 3600),
        put("a", "m"),            # 2
        put("b", "x"),            # 3
        put("a", "m", lease=7),   # 4: a version 2, create 2, mod 4, lease 7
        put("c", ""),             # 5: an empty value
    ])


def test_compare_every_target_and_result(differ):
    _setup(differ)
    int_operands = [-1, 0, 1, 2, 3, 4, 5, 7, 8]
    value_operands = [b"", b"a", b"m", b"m\x00", b"n", b"x", b"y"]
    key_forms = [("a", b""), ("c", b""), ("zz", b""), ("a", b"c"), ("a", b"\0"), ("b", b"\0"),
                 ("p", b"q")]
    requests = []
    for key, end in key_forms:
        for result in RESULTS:
            for target in ("VERSION", "CREATE", "MOD", "LEASE"):
                for operand in int_operands:
                    requests.append(txn([cmp(key, target, result, operand, range_end=end)],
                                        [get("a")], [get("b")]))
            for operand in value_operands:
                requests.append(txn([cmp(key, "VALUE", result, operand, range_end=end)],
                                    [get("a")], [get("b")]))
    out = differ.run(requests)
    assert {r["succeeded"] for r in out} == {True, False}


def test_value_compare_on_missing_keys_always_fails(differ):
    differ.run([put("a", "1")])
    differ.run([
        txn([cmp("missing", "VALUE", result, b"")]) for result in RESULTS
    ] + [
        txn([cmp("missing", "VALUE", result, b"zz", range_end=b"missinh")]) for result in RESULTS
    ] + [
        txn([cmp("missing", "VERSION", "=", 0)]),
        txn([cmp("missing", "CREATE", "=", 0)]),
        txn([cmp("missing", "MOD", "<", 1)]),
        txn([cmp("missing", "LEASE", "=", 0)]),
    ])


def test_multiple_compares_and_empty_compare(differ):
    differ.run([put("a", "1"), put("b", "2")])
    differ.run([
        txn([], [get("a")], [get("b")]),
        txn([cmp("a", "VALUE", "=", "1"), cmp("b", "VALUE", "=", "2")], [get("a")], [get("b")]),
        txn([cmp("a", "VALUE", "=", "1"), cmp("b", "VALUE", "=", "3")], [get("a")], [get("b")]),
        txn([cmp("a", "VALUE", "=", "0"), cmp("b", "VALUE", "=", "2")], [get("a")], [get("b")]),
        txn([cmp("a", "VERSION", ">", 0), cmp("a", "VERSION", "<", 2),
             cmp("a", "MOD", "=", 2)], [put("c", "3")], [put("d", "4")]),
        txn([cmp("a", "VERSION", ">", 0), cmp("c", "VERSION", "=", 0)],
            [put("c", "3")], [put("d", "4")]),
        get("a", "\0"),
        txn([], [], []),  # an empty txn
        txn([cmp("a", "VALUE", "=", "1")], [], []),
    ])


def test_reads_and_writes_inside_a_txn(differ):
    differ.run([put("a", "1"), put("c", "3")])
    differ.run([
        txn([], [get("a"), put("a", "2", prev_kv=True), get("a"), get("a", "\0"),
                 delete("c", prev_kv=True), get("a", "\0"), put("b", "new"), get("a", "\0"),
                 get("a", "\0", revision=3), get("a", "\0", revision=2),
                 get("a", "\0", count_only=True), get("a", "\0", limit=1, sort_order="DESCEND")]),
        txn([], [get("a", revision=5)]),   # the current revision: fine
        txn([], [get("a", revision=6)]),   # future
        # a write txn: a range at the revision the txn itself creates is still "future",
        # etcd checks range revisions against the store before the txn
        txn([], [put("x", "1"), get("x", revision=5), get("x", revision=6)]),
        txn([], [put("y", "1"), get("y", revision=7)]),
        get("a", "\0"),
    ])


def test_txn_header_revisions(differ):
    differ.run([put("a", "1")])
    differ.run([
        txn([], [get("a")]),                                   # read-only
        txn([cmp("a", "VALUE", "=", "1")], [get("a")], [put("b", "1")]),  # write branch not taken
        txn([], [delete("nothing")]),                         # a write that changes nothing
        txn([], [delete("nothing"), get("a")]),
        txn([], [get("a"), delete("a"), get("a"), delete("a")]),
        txn([cmp("a", "VERSION", "=", 0)], [], [put("z", "1")]),  # empty branch taken
        txn([cmp("a", "VERSION", "!=", 0)], [], [put("z", "1")]),
        get("a", "\0"),
    ])


def test_nested_txns(differ):
    differ.run([put("k", "old"), put("n", "1")])
    differ.run([
        # nested compares are decided against the state before any write of the txn
        txn([], [put("k", "new"),
                 txn([cmp("k", "VALUE", "=", "old")], [put("saw", "old"), get("k")],
                     [put("saw", "new"), get("k")])]),
        get("saw"),
        txn([cmp("n", "VALUE", "=", "1")],
            [get("n"),
             txn([cmp("k", "VERSION", "=", 2)],
                 [txn([cmp("nope", "VERSION", "=", 0)], [put("deep", "3"), get("deep")], []),
                  get("k")],
                 [put("wrong", "1")]),
             put("n2", "2"),
             txn([], [], [put("unused", "1")]),
             txn([cmp("n", "VALUE", "=", "9")], [put("unused", "1")], [get("n", "\0")])],
            [put("failed", "1")]),
        txn([cmp("n", "VALUE", "=", "9")],
            [put("s", "1")],
            [txn([cmp("k", "VALUE", "=", "new")], [put("f1", "1"), get("f1")], [put("f2", "1")]),
             txn([], [get("f1")])]),
        txn([], [txn([], [get("k")]), txn([], [txn([], [txn([], [get("n")])])])]),
        get(b"\x00", b"\x00"),
    ])


def test_overlapping_writes_in_a_txn(differ):
    """etcd's checkIntervals: which put/delete overlaps are rejected, and what the
    accepted ones do."""
    differ.run([put("a", "1"), put("b", "2"), put("c", "3")])
    differ.run([
        txn([], [put("a", "x"), put("a", "y")]),
        txn([], [put("a", "x"), delete("a")]),
        txn([], [delete("a"), put("a", "x")]),
        txn([], [delete("a", "c"), put("b", "x")]),
        txn([], [delete("a", "c"), put("c", "x")]),                # c is outside [a, c)
        txn([], [delete("a", "a"), put("a", "x")]),                # empty interval
        txn([], [delete("a"), delete("a")]),                       # two deletes are fine
        txn([], [delete("a", "c"), delete("b", "d")]),
        txn([], [delete("c", "a"), put("b", "x")]),                # inverted interval
        txn([], [delete("c", "a"), put("c", "x")]),
        txn([], [delete("a", "b\x00"), put("b", "x")]),
        get(b"\x00", b"\x00"),
        txn([], [put("a", "1"), put("b", "2"), put("c", "3")]),
        txn([], [txn([], [put("a", "x")]), put("a", "y")]),
        txn([], [txn([], [put("a", "x")], [put("a", "y")])]),      # then/else may share keys
        txn([], [txn([], [put("a", "x")]), txn([], [put("a", "y")])]),
        txn([], [txn([], [put("a", "x")]), txn([], [], [put("a", "y")])]),
        txn([], [txn([], [delete("a")]), txn([], [put("a", "y")])]),
        txn([], [delete("a"), txn([], [put("a", "y")])]),
        txn([], [txn([], [delete("a", "c")]), put("b", "y")]),
        txn([cmp("a", "VERSION", "=", 0)], [get("a")], [put("a", "x"), put("a", "y")]),
        get(b"\x00", b"\x00"),
    ])


def test_overlaps_etcd_lets_through(differ):
    """Overlaps that pass etcd's checks, and the state they leave."""
    differ.run([put("a", "1"), put("b", "2"), put("c", "3"), lease_grant(5, 3600)])
    differ.run([
        # a put in an earlier nested txn, a delete of it in a later one
        txn([], [txn([], [put("a", "x", lease=5)]), txn([], [delete("a", prev_kv=True)]),
                 get("a")]),
        lease_ttl(5),
        get(b"\x00", b"\x00"),
        get("a", revision=5),
        put("a", "back"),
        get("a"),
        # a "\0" range end is an interval ending at "\0" to etcd's overlap check: it
        # overlaps nothing
        txn([], [delete("b", "\0", prev_kv=True), put("b", "again", prev_kv=True),
                 get(b"\x00", b"\x00")]),
        get(b"\x00", b"\x00"),
        get(b"\x00", b"\x00", revision=7),
        txn([], [put("d", "new"), delete("c", "\0", prev_kv=True), get(b"\x00", b"\x00")]),
        get(b"\x00", b"\x00"),
        put("d", "after"),
        get("d"),
    ])


def test_too_many_ops(differ):
    differ.run([
        txn([], [put(f"k{i:03d}", "v") for i in range(128)]),
        txn([], [put(f"k{i:03d}", "v") for i in range(129)]),
        txn([], [get(f"k{i:03d}") for i in range(129)]),
        txn([cmp(f"k{i:03d}", "VERSION", ">", 0) for i in range(128)], [get("k000", limit=1)]),
        txn([cmp(f"k{i:03d}", "VERSION", ">", 0) for i in range(129)]),
        txn([], [], [delete(f"k{i:03d}") for i in range(129)]),
        txn([], [], [delete(f"k{i:03d}") for i in range(128)]),
        # a nested txn gets what the outer one leaves: 128 minus its largest list
        txn([], [*[get(f"k{i:03d}") for i in range(99)],
                 txn([], [get(f"n{i:03d}") for i in range(29)])]),
        txn([], [*[get(f"k{i:03d}") for i in range(99)],
                 txn([], [get(f"n{i:03d}") for i in range(28)])]),
        txn([cmp("x", "VERSION", "=", 0)] * 100, [get("k000"), txn([], [get("n")] * 29)]),
        txn([cmp("x", "VERSION", "=", 0)] * 100, [get("k000"), txn([], [get("n")] * 28)]),
        txn([], [txn([], [get("n")] * 64), txn([], [get("n")] * 127)]),
        txn([], [txn([], [get("n")] * 127)]),
        txn([], [txn([], [txn([], [get("n")] * 126)])]),
        txn([], [txn([], [txn([], [get("n")] * 127)])]),
        get("k", "l", count_only=True),
    ])


def test_txn_request_errors(differ):
    differ.run([put("a", "1"), lease_grant(3, 3600)])
    differ.run([
        txn([cmp("", "VERSION", "=", 0)]),
        txn([], [get("")]),
        txn([], [put("", "v")]),
        txn([], [delete("")]),
        txn([], [], [get("")]),                        # checked in the branch not taken too
        txn([], [txn([], [], [put("", "v")])]),
        txn([], [EMPTY_OP]),                           # an empty RequestOp
        txn([], [get("a")], [EMPTY_OP]),
        txn([], [txn([], [EMPTY_OP])]),
        txn([], [put("a", "v", ignore_value=True)]),   # value provided
        txn([], [put("a", "", lease=3, ignore_lease=True)]),  # lease provided
        txn([], [put("a", "v", lease=99)]),            # lease not found
        txn([], [get("a")], [put("a", "v", lease=99)]),  # ...only on the path taken
        txn([], [put("zz", ignore_value=True)]),        # key not found
        txn([], [put("zz", ignore_lease=True)]),
        txn([], [get("a")], [put("zz", ignore_value=True)]),
        txn([], [txn([cmp("a", "VERSION", "=", 9)], [put("zz", ignore_value=True)],
                     [put("zz", ignore_lease=True)])]),
        # error precedence: size of the txn, then empty keys, then overlaps
        txn([], [put("", "1")] + [get("a")] * 128),
        txn([], [put("a", "1"), put("a", "2"), get("")]),
        txn([], [put("a", "1"), put("a", "2")], [EMPTY_OP]),
        txn([], [put("a", "1", lease=99), put("zz", ignore_value=True)]),
        txn([], [put("zz", ignore_value=True), put("b", "1", lease=99)]),
        txn([], [get("a", revision=9), put("b", "1", lease=99)]),
        txn([], [get("a", revision=9), put("zz", ignore_lease=True)]),
        get("a", "\0"),
    ])


def test_txn_reads_at_compacted_revisions(differ):
    differ.run([put("a", "1"), put("a", "2"), put("a", "3"), compact(3)])
    differ.run([
        txn([], [get("a", revision=2)]),
        txn([], [get("a", revision=3)]),
        txn([], [get("a", revision=4)]),
        txn([], [get("a", revision=5)]),
        txn([], [get("a", revision=-1)]),   # negative: below the compaction revision
        get("a", revision=-1),              # ...whereas a plain range reads the current one
        txn([], [put("b", "1"), get("a", revision=2)]),
        txn([], [get("a")], [get("a", revision=2)]),
        txn([], [txn([], [get("a", revision=1)])]),
        get("b"),
    ])


def test_txn_negative_revision_before_any_compaction(differ):
    differ.run([
        put("a", "1"),
        txn([], [get("a", revision=-1)]),
        txn([], [get("a", revision=-5)]),
        get("a", revision=-5),
    ])


def test_compare_operand_in_another_oneof_member(differ):
    """A Compare whose target_union member does not match its target: etcd compares
    the target with the zero value of its own member (0 or b"").  raftkv's Compare has
    a single ``operand``, so this one request goes through raftkv.wire.compare_from_pb
    (raftkv's gRPC decoding) on the raftkv side."""
    differ.run([lease_grant(4, 3600), put("a", "m", lease=4), put("e", "")])
    requests = []
    for key in ("a", "e", "zz"):
        for target in ("VERSION", "CREATE", "MOD", "VALUE", "LEASE"):
            for result in RESULTS:
                for field, operand in (("value", b"m"), ("value", b""), ("version", 1),
                                       ("lease", 4), ("mod_revision", 3), ("none", None)):
                    requests.append(txn([cmp(key, target, result, operand,
                                             operand_field=field)], [get(key)]))
    out = differ.run(requests)
    assert {r["succeeded"] for r in out} == {True, False}
