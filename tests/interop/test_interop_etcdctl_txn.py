"""etcdctl txn (its stdin syntax, interactive and not) against raftkv and a real etcd."""

from __future__ import annotations

import pytest

from interop_tools import Session, run_both

pytestmark = pytest.mark.timeout(90)


def setup(s: Session) -> None:
    s.ctl("put", "k1", "v1")      # 2
    s.ctl("put", "k2", "v2")      # 3
    s.ctl("put", "k2", "v2b")     # 4 (k2 version 2)
    s.ctl("put", "pre/a", "1")    # 5
    s.ctl("put", "pre/b", "2")    # 6


TXNS = {
    "value-equal-success": 'val("k1") = "v1"\n\nput k1 "new v1"\nget k1\n\nput failed yes\n\n',
    "value-equal-failure": 'value("k1") = "nope"\n\nput k1 x\n\nput failed yes\nget k1\n\n',
    "value-ops": 'val("k1") != "zzz"\nval("k1") > "a"\nval("k2") < "w"\n\nget k1\nget k2\n\nget pre --prefix\n\n',
    "version-compare": 'ver("k2") = "2"\nversion("k1") > "0"\n\nput k2 three\nget k2 -w json\n\ndel k2\n\n',
    "version-compare-false": 'ver("k2") = "5"\n\nput k2 never\n\ndel k2 --prev-kv\nget k2\n\n',
    "create-compare": 'c("k1") = "2"\ncreate("k2") < "4"\n\nput created ok\n\n\n',
    "create-missing-key": 'create("absent") = "0"\n\nput absent now\n\nget absent\n\n',
    "mod-compare": 'mod("k2") = "4"\nm("pre/b") > "5"\n\ndel pre --prefix\nget pre --prefix --count-only\n\nput x y\n\n',
    "mod-compare-false": 'mod("k1") > "100"\n\nput x y\n\nget k1 --rev=2\nget k2 --keys-only\n\n',
    "no-compares": '\nput a 1\nput b 2\nget a\n\n\n',
    "no-ops": 'val("k1") = "v1"\n\n\n\n',
    "del-prev-kv-in-success": 'ver("k1") > "0"\n\ndel k1 --prev-kv\ndel pre --prefix --prev-kv\n\n\n',
    "get-range-flags-in-txn": '\nget pre --prefix --limit=1\nget k --from-key --keys-only\nget k1 --rev=2\n\n\n',
    "put-prev-kv-in-txn": '\nput k1 replaced --prev-kv\n\n\n',
    "duplicate-put": '\nput dup 1\nput dup 2\n\n\n',
    "put-and-delete-same-key": '\nput k1 z\ndel k1\n\n\n',
    "bad-compare-syntax": 'val(k1) == v1\n\nput a b\n\n\n',
    "bad-op": '\nfrobnicate k1\n\n\n',
    "compare-on-future-rev-getting": '\nget k1 --rev=100\n\n\n',
}


@pytest.mark.parametrize("name", list(TXNS))
def test_txn_stdin(pair, name):
    """The same txn twice (it may write, so the second sees the first's effects): simple, then JSON."""
    script = TXNS[name]

    def scenario(s: Session):
        setup(s)
        s.ctl("txn", input=script)
        s.ctl("txn", "-w", "json", input=script)
        s.ctl("get", "", "--prefix", "-w", "json")
    run_both(pair, scenario)


def test_txn_fields_output(pair):
    def scenario(s: Session):
        setup(s)
        s.ctl("txn", "-w", "fields", input='val("k1") = "v1"\n\nput k1 z\nget k2\n\nget k1\n\n')
        s.ctl("txn", "-w", "fields", input='val("k1") = "v1"\n\nput k1 z\nget k2\n\nget k1\n\n')
    run_both(pair, scenario)


def test_txn_interactive(pair):
    """``txn -i``: prompts on stdout, requests read line by line, as a person would type them."""
    def scenario(s: Session):
        setup(s)
        typed = 'mod("k1") > "0"\nver("k2") = "2"\n\nput k1 "from -i"\nget k1\n\nput k1 failed\n\n'
        s.ctl("txn", "-i", input=typed)
        s.ctl("txn", "-i", "-w", "json", input='val("k1") = "nope"\n\nput x 1\n\nget k1\ndel k2 --prev-kv\n\n')
        s.ctl("get", "", "--prefix")
    run_both(pair, scenario)


def test_txn_sequence_revisions(pair):
    """Several txns in a row: revisions advance once per successful writing txn, not per op."""
    def scenario(s: Session):
        s.ctl("txn", input='\nput a 1\nput b 1\nput c 1\n\n\n')
        s.ctl("txn", input='\nget a\n\n\n')
        s.ctl("txn", input='ver("a") = "1"\n\nput a 2\ndel b\n\n\n')
        s.ctl("txn", input='ver("a") = "1"\n\nput a 3\n\nput c 2\n\n')
        s.ctl("txn", input='ver("nope") = "1"\n\n\n\nget a\n\n')
        s.ctl("get", "", "--prefix", "-w", "json")
        s.ctl("get", "b", "--rev=2", "-w", "json")
    run_both(pair, scenario)
