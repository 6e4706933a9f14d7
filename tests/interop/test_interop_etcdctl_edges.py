"""Limits and odd inputs through etcdctl, against raftkv and etcd: sizes, txn op counts,
non-UTF-8 keys, prefix edge cases, future-revision watches, make-mirror between the two."""

from __future__ import annotations

import json
import time

import pytest

from interop_tools import Session, etcdctl, etcdctl_bg, run_both

pytestmark = pytest.mark.timeout(90)


def test_request_size_limits(pair):
    """etcd's default --max-request-bytes is 1.5 MiB: 1 MiB fits, 1.6 MiB is refused by the
    server, 2 MiB already by etcdctl's gRPC client (its 2 MiB send limit)."""
    def scenario(s: Session):
        s.ctl("put", "one-mib", input="x" * (1024 * 1024))
        s.ctl("put", "too-big", input="z" * (1024 * 1024 * 16 // 10))
        s.ctl("put", "two-mib", input="y" * (2 * 1024 * 1024))
        s.ctl("txn", input="\n" + "".join(f"put t{i} {'v' * 400_000}\n" for i in range(4)) + "\n\n")
        s.ctl("get", "one-mib", "--keys-only", "-w", "json")
        s.ctl("get", "two-mib", "-w", "json")
        r = s.ctl("get", "one-mib", "--print-value-only", record=False)
        s.note("value length", len(r.out))
    run_both(pair, scenario)


def test_txn_op_limit(pair):
    """etcd's default --max-txn-ops is 128."""
    def scenario(s: Session):
        puts = "".join(f"put k{i} v\n" for i in range(128))
        s.ctl("txn", input="\n" + puts + "\n\n")
        s.ctl("txn", input="\n" + puts + "put k128 v\n\n\n")
        s.ctl("txn", input="".join(f'ver("k{i}") = "1"\n' for i in range(129)) + "\n\n\n")
        s.ctl("get", "k", "--prefix", "--keys-only", "--limit=3", "-w", "json")
    run_both(pair, scenario)


def test_odd_keys(pair):
    """Non-UTF-8 bytes, 0xff prefixes (range end wraps to "\\0": every key from there on), spaces."""
    ff = "\udcff"          # os.fsencode turns this into the single byte 0xff
    def scenario(s: Session):
        s.ctl("put", "a", "1")
        s.ctl("put", ff, "ff-value")
        s.ctl("put", ff + ff, "ffff")
        s.ctl("put", "\udcfe", "fe")
        s.ctl("put", "ünïcödé", "ü")
        s.ctl("put", " ", "space")
        s.ctl("get", ff, "--prefix", "--hex")
        s.ctl("get", ff, "--prefix", "-w", "json")
        s.ctl("get", "\udcfe", "--from-key", "--hex")
        s.ctl("get", "", "--prefix", "--keys-only", "--hex")
        s.ctl("get", "ü", "--prefix")
        s.ctl("del", ff, "--prefix", "--prev-kv", "--hex")
        s.ctl("get", "", "--from-key", "-w", "json")
    run_both(pair, scenario)


def test_more_get_errors(pair):
    def scenario(s: Session):
        s.ctl("put", "a", "1")
        s.ctl("get", "")
        s.ctl("del", "")
        s.ctl("get", "a", "--rev=-1")
        s.ctl("get", "a", "--limit=-1")
        s.ctl("get", "a", "--rev=0", "-w", "json")
        s.ctl("get", "b", "a")                    # range end before start: nothing
        s.ctl("del", "b", "a")
    run_both(pair, scenario)


def test_watch_future_revision(pair):
    """A watch from a revision not reached yet waits for it, and skips what comes before."""
    def scenario(s: Session):
        s.ctl("put", "f", "0")                    # 2
        with s.bg("watch", "f", "--rev=4") as w:
            time.sleep(0.5)
            s.ctl("put", "f", "1")                # 3: before the start, not seen
            s.ctl("put", "f", "2")                # 4
            s.ctl("put", "f", "3")                # 5
            lines = w.read_lines(6, timeout=10) + w.drain(0.3)
            w.terminate()
            s.record_lines("watch f --rev=4", lines, w.stderr)
    run_both(pair, scenario)


def wait_for(endpoints: list[str], key: str, count: int, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = etcdctl(endpoints, ["get", key, "--prefix", "-w", "json"])
        doc = json.loads(r.out) if r.rc == 0 else {}
        if doc.get("count", 0) >= count or time.monotonic() > deadline:
            return doc


@pytest.mark.parametrize("direction", ["etcd-to-raftkv", "raftkv-to-etcd"])
def test_make_mirror(pair, direction):
    """``etcdctl make-mirror``: copies the existing keys, then streams new writes, across the two."""
    source, dest = (pair.etcd, pair.raftkv) if direction == "etcd-to-raftkv" else (pair.raftkv, pair.etcd)
    for i in range(5):
        source.ctl("put", f"m/{i}", f"v{i}").ok()
    source.ctl("put", "other", "not mirrored").ok()
    with etcdctl_bg(source.endpoints, ["make-mirror", "--prefix=m/", "--dest-prefix=copy/",
                                       dest.endpoints[0]]) as mirror:
        doc = wait_for(dest.endpoints, "copy/", 5)
        assert doc.get("count") == 5, (doc, mirror.stderr)
        source.ctl("put", "m/new", "live").ok()
        source.ctl("del", "m/0").ok()
        source.ctl("txn", input="\nput m/t1 a\nput m/t2 b\n\n\n").ok()
        expected = ["copy/1", "v1", "copy/2", "v2", "copy/3", "v3", "copy/4", "v4",
                    "copy/new", "live", "copy/t1", "a", "copy/t2", "b"]
        deadline = time.monotonic() + 20
        while True:
            got = etcdctl(dest.endpoints, ["get", "copy/", "--prefix"]).ok().out.split("\n")[:-1]
            if got == expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        mirror.terminate()
        assert got == expected, (got, mirror.stderr)
        assert etcdctl(dest.endpoints, ["get", "other"]).ok().out == ""
