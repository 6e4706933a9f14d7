"""Leases, ignore_value/ignore_lease, and etcd's request-size limits.

Leases are granted with explicit IDs on both sides so the IDs match.  Leases
that carry keys get long TTLs: etcd expires leases on its own clock, and
these tests must not race it.  (The short, clamped TTLs are only granted to
leases that never hold keys, and the tests finish in milliseconds.)
"""

from __future__ import annotations

import pytest

from difftools import (
    EMPTY_OP,
    cmp,
    delete,
    get,
    lease_grant,
    lease_revoke,
    lease_ttl,
    put,
    txn,
)

pytestmark = pytest.mark.timeout(60)

MAX_REQUEST_BYTES = 1536 * 1024  # etcd's --max-request-bytes default
MIB = 1024 * 1024


def test_lease_grant_ttls_and_errors(differ):
    differ.run([
        lease_grant(1, 0),     # below the minimum TTL: etcd grants its minimum, 2 s
        lease_grant(2, 1),
        lease_grant(3, 2),
        lease_grant(4, 3),
        lease_grant(5, -5),
        lease_grant(6, 9_000_000_000),   # etcd's MaxLeaseTTL
        lease_grant(7, 9_000_000_001),   # too large
        lease_grant(1, 60),              # exists
        lease_grant(2**62, 60),
        lease_grant(-3, 60),
        *[lease_ttl(i) for i in (1, 2, 3, 4, 5, 6, 7, 2**62, -3, 99)],
        lease_revoke(99),
        *[lease_revoke(i) for i in (1, 2, 3, 4, 5, 6, 2**62, -3)],
        *[lease_ttl(i) for i in (1, 6)],
        lease_revoke(1),
    ])


def test_lease_keys_attach_detach_and_revoke(differ):
    differ.run([
        lease_grant(10, 3600),
        lease_grant(11, 3600),
        put("a", "1", lease=10),
        put("b", "1", lease=10),
        put("c", "1", lease=10),
        put("d", "1"),
        lease_ttl(10),
        get("a", "\0"),
        put("a", "2", prev_kv=True),                 # no lease: detached from 10
        put("b", "2", ignore_lease=True, prev_kv=True),  # keeps lease 10
        put("c", "2", lease=11),                     # moves to lease 11
        lease_ttl(10),
        lease_ttl(11),
        txn([cmp("b", "LEASE", "=", 10), cmp("c", "LEASE", "=", 11), cmp("a", "LEASE", "=", 0)],
            [put("e", "1", lease=10), get("a", "\0")]),
        lease_ttl(10),
        lease_revoke(10),                            # deletes b and e in one revision
        get(b"\x00", b"\x00"),
        get(b"\x00", b"\x00", revision=9),
        get(b"\x00", b"\x00", revision=10),
        lease_revoke(10),
        lease_ttl(10),
        put("x", "1", lease=10),
        txn([], [put("x", "1", lease=10)]),
        delete("c"),
        lease_ttl(11),
        lease_revoke(11),                            # its only key is gone: no new revision
        get(b"\x00", b"\x00"),
        lease_grant(10, 3600),                       # an ID can be granted again
        put("a", "3", lease=10, prev_kv=True),
        lease_ttl(10),
        lease_revoke(10),
        get(b"\x00", b"\x00"),
    ])


def test_lease_revoke_many_keys_one_revision(differ):
    differ.run([lease_grant(42, 3600)])
    differ.run([put(f"k{i}", str(i), lease=42) for i in range(10)])
    differ.run([
        put("k3", "x"), delete("k5"),
        lease_ttl(42),
        lease_revoke(42),
        get("k", "l"),
        get("k", "l", revision=13),
        get("k", "l", revision=14),
        put("z", "1"),
    ])


def test_ignore_value_and_ignore_lease(differ):
    differ.run([lease_grant(5, 3600), lease_grant(6, 3600)])
    differ.run([
        put("k", ignore_value=True),                  # no such key
        put("k", ignore_lease=True),
        put("k", "v", ignore_value=True),             # value provided (checked first)
        put("k", lease=5, ignore_lease=True),         # lease provided
        put("k", "v", lease=5, ignore_value=True, ignore_lease=True),
        put("k", "v1", lease=5),
        put("k", ignore_value=True, prev_kv=True),    # keeps the value, lease 0 now
        get("k"),
        lease_ttl(5),
        put("k", ignore_value=True, lease=6, prev_kv=True),
        put("k", "v2", ignore_lease=True, prev_kv=True),
        get("k"),
        put("k", ignore_value=True, ignore_lease=True, prev_kv=True),  # a bare touch
        get("k"),
        lease_ttl(6),
        put("k", "v", ignore_value=True, lease=99),   # value provided beats lease not found
        put("k", ignore_value=True, lease=99),        # lease not found
        put("nokey", ignore_value=True, lease=99),    # lease not found beats key not found
        delete("k"),
        put("k", ignore_value=True),
        put("k", ignore_lease=True),
        txn([], [put("k", ignore_value=True)]),
        put("k", "back", lease=6),
        txn([], [put("k", ignore_value=True, prev_kv=True), get("k")]),
        txn([], [put("k", "t", ignore_lease=True), get("k")]),
        lease_ttl(6),
        lease_revoke(6),
        get("k"),
    ])


def test_request_too_large_writes(differ):
    """Puts and deletes go through raft, where etcd applies --max-request-bytes."""
    big = int(1.6 * MIB)
    differ.run([
        put("k", b"v" * big),
        delete(b"k" * big),
        txn([], [put("k", b"v" * big)]),
        txn([], [put(f"k{i}", b"v" * (16 * 1024)) for i in range(100)]),  # 1.6 MiB in total
        put("k", b"v" * (MAX_REQUEST_BYTES - 64)),  # comfortably under
        get("k", keys_only=True),
        put("k", b"w" * (MAX_REQUEST_BYTES - 16)),  # over, with its framing
        put("k", b"w" * MAX_REQUEST_BYTES),
        get("k", keys_only=True),
    ])


def test_request_size_just_under_the_limit(differ):
    differ.run([
        put("k", b"v" * (MAX_REQUEST_BYTES - 40)),
        put("k", b"v" * (MAX_REQUEST_BYTES - 30)),  # etcd: accepted (encoded ~L-6)
        get("k", keys_only=True),
    ])


def test_request_size_of_a_large_txn_just_under_the_limit(differ):
    differ.run([
        txn([], [put(f"k{i:03d}", b"v" * 12_200) for i in range(128)]),
        txn([], [put(f"k{i:03d}", b"v" * 12_250) for i in range(128)]),
        get("k", "l", count_only=True),
    ])


def test_large_range_request_is_served(differ):
    """etcd applies --max-request-bytes only to requests it proposes through raft: a
    Range is served locally, so a 1.6 MiB key is fine (under gRPC's 2 MiB)."""
    big = int(1.6 * MIB)
    differ.run([
        put("k", "v"),
        get(b"k" * big),
        get(b"k", b"k" * big),
    ])


def test_large_read_only_txn_is_served(differ):
    """A txn with no put or delete in either branch is served without raft, so without
    the size check; one write anywhere (even in the branch not taken) makes it a raft
    proposal, checked for size."""
    big = int(1.6 * MIB)
    differ.run([
        put("k", "v"),
        txn([cmp("k", "VALUE", "=", b"v" * big)], [get("k")], [get("k")]),
        txn([], [get(b"k" * big)]),
        txn([cmp("k", "VALUE", "=", b"v" * big)], [get("k")], [put("k", "w")]),
        txn([cmp("k", "VALUE", "=", "v")], [get(b"k" * big)], [delete("k")]),
        txn([], [get("k")], [txn([], [], [delete(b"k" * big)])]),
        get("k"),
    ])


def test_txn_with_nested_read_only_txn_is_size_checked(differ):
    big = int(1.6 * MIB)
    differ.run([
        put("k", "v"),
        txn([], [txn([], [get(b"k" * big)])]),
        txn([cmp("k", "VALUE", "=", b"v" * big)], [get("k")], [txn([], [get("k")])]),
    ])


def test_request_checks_come_before_the_size_check(differ):
    """etcd's gRPC layer validates a request before etcdserver measures it for raft;
    checks made while applying (lease, key existence) come after the size check."""
    big = int(1.6 * MIB)
    differ.run([
        put("", b"v" * big),                                   # key not provided
        put("k", b"v" * big, ignore_value=True),               # value provided
        put("k", b"v" * big, lease=5, ignore_lease=True),      # lease provided
        delete("", b"k" * big),
        txn([], [put(f"k{i}", b"v" * (12 * 1024)) for i in range(129)]),  # too many ops
        txn([], [put("k", b"v" * big), put("k", "again")]),    # duplicate key
        txn([cmp("", "VERSION", "=", 0)], [put("k", b"v" * big)]),  # empty compare key
        txn([], [put("k", b"v" * big), EMPTY_OP]),             # empty request op
        put("k", b"v" * big, lease=99),                        # too large before lease lookup
        put("k", b"v" * big, ignore_value=False, ignore_lease=True),  # ...and key lookup
        txn([], [put("k", b"v" * big, lease=99)]),
        get("k"),
    ])


def test_request_over_grpc_max_receive(differ):
    """Over --max-request-bytes + 512 KiB, etcd's gRPC server refuses a
    request before etcd sees it. The raftkv side here is the state machine
    alone, whose own guard answers; raftkv's gRPC server answers in etcd's
    words (tests/server/test_serving_defects.py, oversize requests)."""
    out = differ.run([put("k", "small")])
    assert out[0]["revision"] == 2
    requests = (put("k", b"v" * (2 * MIB)), put("k", b"v" * int(2.5 * MIB)), get(b"k" * int(2.5 * MIB)))
    answers = [differ.both(request) for request in requests]
    for etcd, _ in answers:
        assert etcd["code"] == "RESOURCE_EXHAUSTED"
        assert etcd["error"].startswith("grpc: received message larger than max (")
        assert etcd["error"].endswith(" vs. 2097152)")
    # the state machine's own guard is on writes; a read changes nothing
    assert [raftkv for _, raftkv in answers[:2]] == [{"error": "etcdserver: request is too large",
                                                     "code": "INVALID_ARGUMENT"}] * 2
    assert answers[2][1]["type"] == "range" and answers[2][1]["count"] == 0
    assert differ.step(get("k"))["kvs"][0]["value"] == b"small"
