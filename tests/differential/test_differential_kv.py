"""Put / Range / DeleteRange / Compact: raftkv against a real etcd 3.4.

Each test drives a fresh etcd and a fresh raftkv KVStore with the same
requests and requires identical normalized answers at every step (header
revision, every KeyValue field, more, count, deleted, prev_kv(s), errors).
"""

from __future__ import annotations

import pytest

from difftools import compact, delete, get, prefix_end, put

pytestmark = pytest.mark.timeout(60)

SORT_TARGETS = ["KEY", "VERSION", "CREATE", "MOD", "VALUE"]
SORT_ORDERS = ["NONE", "ASCEND", "DESCEND"]


def test_put_get_overwrite(differ):
    r = differ.run([
        get("a"),
        put("a", "1"),
        get("a"),
        put("a", "2", prev_kv=True),
        put("a", "", prev_kv=True),  # empty value is a value
        get("a"),
        put("b", "x", prev_kv=True),  # prev_kv of a new key: none
        put(b"\x00", b"\xff\x00bin"),  # binary keys and values
        put(b"\xff", b"top"),
        get(b"\x00", b"\x00"),
        get("missing"),
    ])
    assert r[-2]["count"] == 4 and r[-3]["revision"] == 7


def test_delete_and_recreate_generations(differ):
    differ.run([
        put("k", "v1"),
        put("k", "v2"),
        put("k", "v3"),
        delete("k", prev_kv=True),
        get("k"),
        delete("k", prev_kv=True),  # nothing to delete: no new revision
        delete("nothing", "nothinh"),
        put("k", "again"),  # a new generation: version 1, new create_revision
        get("k"),
        put("k", "again2", prev_kv=True),
        *[get("k", revision=rev) for rev in range(0, 8)],
        delete("k"),
        put("k", "third"),
        get("k"),
        *[get("k", revision=rev) for rev in range(5, 10)],
    ])


def test_ranges(differ):
    keys = [b"a", b"ab", b"abc", b"abd", b"b", b"b\x00", b"ba", b"c", b"\xfe", b"\xff", b"\xff\xff"]
    differ.run([put(k, b"v-" + k) for k in keys])
    differ.run([
        get("a", "b"),
        get("a", "\0"),
        get("b", "\0"),
        get(b"\x00", b"\x00"),  # every key
        get("ab", prefix_end("ab")),
        get("b", prefix_end("b")),
        get(b"\xff", prefix_end(b"\xff")),  # prefix_end is "\0": from \xff on
        get(b"\xff\xff", b"\x00"),
        get("b", "a"),  # end before key: nothing
        get("a", "a"),  # empty interval
        get("abc", "abd"),
        get("abc", "abd\x00"),
        get("b", "b\x00"),
        get("b", "b\x00\x00"),
        get("zzz", "\0"),
        get("a", "c", limit=0),
    ])


def test_range_delete_forms(differ):
    keys = [b"a", b"ab", b"abc", b"b", b"b\x00", b"c", b"\xff"]
    differ.run([put(k, k) for k in keys])
    differ.run([
        delete("ab", prefix_end("ab"), prev_kv=True),
        get(b"\x00", b"\x00", keys_only=True),
        delete("b", "a", prev_kv=True),  # inverted: nothing
        delete("b", "\0", prev_kv=True),
        get(b"\x00", b"\x00"),
        delete("a", "\0"),
        get(b"\x00", b"\x00"),
        *[get(b"\x00", b"\x00", revision=rev) for rev in range(1, 11)],
    ])


def test_limit_more_count(differ):
    differ.run([put(f"k{i}", str(i)) for i in range(6)])
    differ.run([
        *[get("k", "l", limit=n) for n in (1, 2, 5, 6, 7, -1, -100)],
        get("k", "l", limit=2, keys_only=True),
        get("k", "l", limit=2, count_only=True),
        get("k", "l", limit=3, sort_order="DESCEND"),
        get("k", "l", limit=3, sort_target="VALUE", sort_order="DESCEND"),
        get("k", "l", limit=1, min_mod_revision=4),
        get("k", "l", limit=1, max_mod_revision=3),
        get("k", "l", limit=2, revision=3),
        get("k3", limit=1),
        get("nothing", "nothinh", limit=1),
    ])


def _setup_sortable(differ):
    """Four keys where key, create, mod, version and value orders all differ."""
    differ.run([
        put("c", "3"),     # rev 2: c create 2
        put("a", "4"),     # rev 3: a create 3
        put("d", "1"),     # rev 4: d create 4
        put("b", "2"),     # rev 5: b create 5
        put("c", "5"),     # rev 6: c v2
        put("c", "0"),     # rev 7: c v3
        put("d", "1"),     # rev 8: d v2
        put("a", "4"),     # rev 9: a v2 -> versions a2 b1 c3 d2 (tie a/d, kept small)
        put("a", "9"),     # rev 10: a v3 -> a3 b1 c3 d2 (tie a/c)
        put("c", "7"),     # rev 11: c v4 -> a3 b1 c4 d2: all distinct
    ])


def test_sort_every_target_and_order(differ):
    _setup_sortable(differ)
    requests = []
    for target in SORT_TARGETS:
        for order in SORT_ORDERS:
            requests.append(get("a", "\0", sort_target=target, sort_order=order))
            # (a filter makes etcd fetch every key before sorting, whatever the order)
            requests.append(get("a", "\0", sort_target=target, sort_order=order, keys_only=True,
                                limit=3, min_create_revision=3))
            requests.append(get("a", "\0", sort_target=target, sort_order=order, limit=2))
    out = differ.run(requests)
    # sanity: the sort targets really disagree in this data set
    orders = {tuple(kv["key"] for kv in r["kvs"]) for r in out if len(r["kvs"]) == 4}
    assert len(orders) >= 6


def test_sort_default_order_with_limit(differ):
    """etcd 3.4 with sort_order=NONE and a sort_target other than KEY sorts ASCEND, but
    only after fetching limit+1 keys in key order (its "fetch everything, then sort" rule
    looks at sort_order and the revision filters, not at sort_target): it returns the
    first `limit` keys of a sort of the first limit+1 keys.  With a filter set it sorts
    the whole range."""
    _setup_sortable(differ)
    differ.run([get("a", "\0", sort_target=target, sort_order="NONE", limit=limit)
                for target in SORT_TARGETS for limit in (1, 2, 3)])
    differ.run([get("a", "\0", sort_target=target, sort_order="NONE", limit=2,
                    min_mod_revision=1) for target in SORT_TARGETS])


def test_sort_ties_small_result_sets(differ):
    """Ties in the sort target, in result sets of at most 12 keys.

    etcd 3.4.23 is built with Go 1.19, whose sort.Sort (pdqsort) uses plain
    insertion sort for 12 elements or fewer: that is stable, so ties stay in
    key order, for ASCEND and for DESCEND (sort.Reverse flips Less, and the
    insertion sort never moves an element past an equal one).  A result set
    whose sort values are all equal also stays in key order at any size.
    """
    differ.run([put(f"k{i:02d}", "ab"[i % 2]) for i in range(12)])
    differ.run([put(f"k{i:02d}", "ab"[i % 2]) for i in range(0, 12, 3)])  # versions 1 and 2
    requests = []
    for target in SORT_TARGETS:
        for order in SORT_ORDERS:
            requests.append(get("k", "l", sort_target=target, sort_order=order))
            requests.append(get("k", "l", sort_target=target, sort_order=order, limit=5))
            requests.append(get("k00", "k05", sort_target=target, sort_order=order))
    differ.run(requests)
    differ.run([put(f"s{i:02d}", "same") for i in range(30)])
    differ.run([get("s", "t", sort_target=t, sort_order=o) for t in ("VALUE", "VERSION")
                for o in SORT_ORDERS])


def test_sort_ties_large_result_set(differ):
    """README, "Differences from etcd": raftkv's sort is stable, so ties keep
    key order. etcd sorts with Go's unstable sort.Sort (pdqsort): past 12
    results its order among ties differs, though the results are the same."""
    differ.run([put(f"k{i:02d}", "abc"[i % 3]) for i in range(20)])
    differ.run([put(f"k{i:02d}", "abc"[i % 3]) for i in range(0, 20, 2)])
    orders_differ = False
    for target in ("VALUE", "VERSION"):
        for order in ("ASCEND", "DESCEND"):
            etcd, raftkv = differ.both(get("k", "l", sort_target=target, sort_order=order))
            field = target.lower()

            def sort_key(kv: dict) -> object:
                return kv[field]

            assert sorted(etcd["kvs"], key=lambda kv: kv["key"]) == sorted(raftkv["kvs"], key=lambda kv: kv["key"])
            expected = sorted(sorted(raftkv["kvs"], key=lambda kv: kv["key"]), key=sort_key,
                              reverse=order == "DESCEND")
            assert raftkv["kvs"] == expected  # by the target, ties in key order
            assert [sort_key(kv) for kv in etcd["kvs"]] == [sort_key(kv) for kv in expected]
            orders_differ |= etcd["kvs"] != raftkv["kvs"]
    assert orders_differ  # what the README says etcd does


def test_keys_only_and_count_only(differ):
    differ.run([put("a", "1"), put("b", "2"), put("c", "3"), put("b", "22")])
    differ.run([
        get("a", "\0", keys_only=True),
        get("a", "\0", count_only=True),
        get("a", "\0", count_only=True, keys_only=True),
        get("a", "\0", count_only=True, limit=1),
        get("a", "\0", count_only=True, min_mod_revision=4),
        get("a", "\0", count_only=True, sort_order="DESCEND", sort_target="VALUE"),
        get("b", keys_only=True),
        get("b", count_only=True),
        get("zz", count_only=True),
        get("a", "\0", keys_only=True, revision=2),
        get("a", "\0", count_only=True, revision=3),
    ])


def test_min_max_mod_create_filters(differ):
    differ.run([
        put("a", "1"),  # 2
        put("b", "1"),  # 3
        put("c", "1"),  # 4
        put("a", "2"),  # 5
        put("d", "1"),  # 6
        put("b", "2"),  # 7
    ])
    requests = []
    for field in ("min_mod_revision", "max_mod_revision", "min_create_revision",
                  "max_create_revision"):
        for value in (-1, 1, 2, 3, 4, 5, 6, 7, 8, 100):
            requests.append(get("a", "\0", **{field: value}))
    requests += [
        get("a", "\0", min_mod_revision=3, max_mod_revision=6),
        get("a", "\0", min_create_revision=3, max_create_revision=4),
        get("a", "\0", min_mod_revision=5, max_create_revision=3),
        get("a", "\0", min_mod_revision=6, max_mod_revision=5),
        get("a", "\0", min_mod_revision=4, limit=1),
        get("a", "\0", min_mod_revision=4, limit=2, sort_target="MOD", sort_order="DESCEND"),
        get("a", "\0", max_create_revision=4, revision=5),
        get("a", "\0", min_create_revision=3, keys_only=True),
    ]
    differ.run(requests)


def test_reads_at_past_and_future_revisions(differ):
    differ.run([
        put("a", "1"), put("b", "1"), delete("a"), put("a", "2"), put("b", "2"),
        delete("b"), put("c", "1"),
    ])
    differ.run([
        *[get("a", "\0", revision=rev) for rev in range(-2, 9)],
        get("a", "\0", revision=9),  # future
        get("a", "\0", revision=1000),
        get("a", revision=9),
        get("a", "\0", revision=9, count_only=True),
        put("d", "1"),
        get("a", "\0", revision=9),
        get("a", "\0", revision=10),
    ])


def test_compaction_and_compacted_reads(differ):
    differ.run([
        put("a", "1"),   # 2
        put("b", "1"),   # 3
        put("a", "2"),   # 4
        delete("b"),     # 5
        put("c", "1"),   # 6
        put("a", "3"),   # 7
    ])
    differ.run([
        compact(5),
        get("a", "\0", revision=4),      # compacted
        get("a", "\0", revision=5),      # exactly the compaction revision: still readable
        get("a", "\0", revision=6),
        get("a", "\0"),
        get("a", "\0", revision=0),
        get("a", "\0", revision=-1),
        get("a", "\0", revision=1),
        get("a", "\0", revision=4, count_only=True),
        get("a", "\0", revision=8),      # future still wins over compacted
        compact(5),                      # compacting again at the same revision
        compact(3),                      # ...or below it
        compact(8),                      # a future revision
        compact(7),                      # up to the current revision
        get("a", "\0", revision=6),
        get("a", "\0", revision=7),
        put("b", "again"),
        get("b"),
        compact(8),
        get("a", "\0"),
        get("a", "\0", revision=7),
    ])


def test_compact_twice_and_edge_revisions(differ):
    differ.run([
        compact(0),   # a fresh etcd: 0 > -1, allowed
        compact(0),
        compact(-1),
        compact(1),
        compact(2),
        put("a", "1"),
        put("a", "2"),
        compact(2),
        compact(2),
        get("a", revision=1),
        get("a", revision=2),
        compact(3),
        compact(4),
        get("a", revision=2),
        get("a", revision=3),
        get("a"),
        delete("a"),
        compact(4),  # the deletion's own revision
        get("a", revision=4),
        get("a", "\0", revision=4, count_only=True),
        put("a", "new"),
        get("a"),
    ])


def test_compaction_keeps_versions_and_generations(differ):
    differ.run([
        put("k", "1"), put("k", "2"), put("k", "3"), delete("k"), put("k", "g2-1"),
        put("k", "g2-2"), put("other", "x"),
        compact(6),
        get("k"), get("k", revision=6), get("k", revision=5),
        put("k", "g2-3", prev_kv=True),
        delete("k", prev_kv=True),
        put("k", "g3-1", prev_kv=True),
        compact(10),
        get("k", "\0"),
        delete("a", "\0", prev_kv=True),
        get(b"\x00", b"\x00", revision=10),
    ])


def test_empty_key_errors(differ):
    differ.run([
        put("", "v"),
        get(""),
        get("", "\0"),
        get("", "z"),
        delete(""),
        delete("", "\0"),
        put("a", "1"),
        get(b"\x00", b"\x00"),  # the "from the lowest key" idiom is fine
    ])
