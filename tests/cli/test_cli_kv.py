"""put, get, del, txn, compact against a real single member, in-process
(CliRunner), compared with etcdctl's output where etcdctl has one."""

from __future__ import annotations

import base64
import json

import pytest

from cli_helpers import ETCDCTL_MISSING, HAVE_ETCDCTL, etcdctl

needs_etcdctl = pytest.mark.skipif(not HAVE_ETCDCTL, reason=ETCDCTL_MISSING)


def test_put_then_get_prints_key_and_value(kv):
    p = kv.prefix
    assert kv("put", p + "greeting", "hello").ok().out == "OK\n"
    assert kv("get", p + "greeting").ok().out == f"{p}greeting\nhello\n"
    assert kv("put", p + "greeting", "hi", "--prev-kv").ok().out == f"OK\n{p}greeting\nhello\n"
    assert kv("get", p + "greeting", "--print-value-only").ok().out == "hi\n"


def test_get_missing_key_prints_nothing_and_succeeds(kv):
    result = kv("get", kv.prefix + "nothing-here").ok()
    assert result.out == "" and result.err == ""


def test_put_reads_the_value_from_stdin(kv):
    kv("put", kv.prefix + "doc", input="line one\nline two\n").ok()
    assert kv("get", kv.prefix + "doc", "--print-value-only").ok().out == "line one\nline two\n\n"


def test_put_a_value_starting_with_a_dash_after_double_dash(kv):
    kv("put", "--", kv.prefix + "neg", "-1").ok()
    assert kv("get", kv.prefix + "neg", "--print-value-only").ok().out == "-1\n"


def test_range_selections_and_ordering(kv):
    p = kv.prefix
    for key, value in (("a", "3"), ("b", "1"), ("c", "2")):
        kv("put", p + key, value).ok()
    assert kv("get", p, "--prefix", "--keys-only").ok().lines == [p + "a", "", p + "b", "", p + "c", ""]
    assert kv("get", p + "a", p + "c").ok().lines == [p + "a", "3", p + "b", "1"]
    assert kv("get", p + "b", "--from-key", "--keys-only", "--limit", "2").ok().lines == [p + "b", "", p + "c", ""]
    assert kv("get", p, "--prefix", "--sort-by", "VALUE", "--print-value-only").ok().lines == ["1", "2", "3"]
    assert kv("get", p, "--prefix", "--sort-by", "value", "--order", "DESCEND",
              "--print-value-only").ok().lines == ["3", "2", "1"]
    assert kv("get", p, "--prefix", "--order", "DESCEND", "--keys-only").ok().lines[0] == p + "c"
    assert kv("get", p, "--prefix", "--consistency", "s", "--print-value-only").ok().lines == ["3", "1", "2"]


def test_get_at_a_past_revision(kv):
    key = kv.prefix + "versioned"
    first = json.loads(kv("put", key, "v1", "-w", "json").ok().out)["header"]["revision"]
    kv("put", key, "v2").ok()
    assert kv("get", key, "--rev", str(first), "--print-value-only").ok().out == "v1\n"
    assert kv("get", key, "--print-value-only").ok().out == "v2\n"


def test_json_output_has_etcds_shape(kv):
    key = kv.prefix + "j"
    kv("put", key, "value").ok()
    data = json.loads(kv("-w", "json", "get", key).ok().out)
    assert set(data) == {"header", "kvs", "count"}
    assert set(data["header"]) == {"cluster_id", "member_id", "revision", "raft_term"}
    (item,) = data["kvs"]
    assert base64.b64decode(item["key"]).decode() == key
    assert base64.b64decode(item["value"]) == b"value"
    assert item["version"] == 1 and "lease" not in item  # defaults are left out, as Go's omitempty does
    assert data["count"] == 1


@needs_etcdctl
@pytest.mark.parametrize("args", [
    ["get", "{p}a"],
    ["get", "{p}", "--prefix"],
    ["get", "{p}", "--prefix", "--keys-only"],
    ["get", "{p}a", "--print-value-only"],
    ["get", "{p}missing"],
    ["get", "{p}", "--prefix", "--sort-by", "MODIFY", "--order", "DESCEND", "--limit", "1"],
    ["-w", "json", "get", "{p}a"],
    ["-w", "json", "get", "{p}", "--prefix", "--keys-only"],
    ["-w", "json", "get", "{p}missing"],
    ["--hex", "get", "{p}a"],
    ["member", "list"],
    ["-w", "json", "member", "list"],
    ["-w", "table", "member", "list"],
])
def test_read_output_matches_etcdctl(kv, args):
    p = kv.prefix
    kv("put", p + "a", "alpha").ok()
    kv("put", p + "b", "beta\nwith a newline").ok()
    argv = [a.format(p=p) for a in args]
    ours = kv(*argv).ok().out
    theirs = etcdctl(kv.endpoint, *argv)
    assert theirs.code == 0, theirs.err
    assert ours == theirs.out


@needs_etcdctl
@pytest.mark.parametrize("fmt", ["simple", "json"])
def test_read_only_txn_output_matches_etcdctl(kv, fmt):
    p = kv.prefix
    kv("put", p + "k", "v").ok()
    text = f'value("{p}k") = "v"\nmod("{p}k") > "0"\n\nget {p}k\nget {p} --prefix --keys-only\n\nget {p}none\n\n'
    ours = kv("-w", fmt, "txn", input=text).ok().out
    theirs = etcdctl(kv.endpoint, "-w", fmt, "txn", input=text)
    assert theirs.code == 0, theirs.err
    assert ours == theirs.out


def test_del_prints_count_and_previous_values(kv):
    p = kv.prefix
    kv("put", p + "x1", "1").ok()
    kv("put", p + "x2", "2").ok()
    assert kv("del", p + "nothing").ok().out == "0\n"
    assert kv("del", p + "x", "--prefix", "--prev-kv").ok().lines == ["2", p + "x1", "1", p + "x2", "2"]
    assert kv("get", p + "x", "--prefix").ok().out == ""


def test_del_json(kv):
    kv("put", kv.prefix + "gone", "1").ok()
    data = json.loads(kv("del", kv.prefix + "gone", "--prev-kv", "-w", "json").ok().out)
    assert data["deleted"] == 1 and len(data["prev_kvs"]) == 1


def test_txn_from_stdin_takes_the_success_branch(kv):
    p = kv.prefix
    kv("put", p + "leader", "").ok()
    text = f'mod("{p}leader") > "0"\n\nput {p}leader me\nget {p}leader\n\nput {p}lost yes\n\n'
    result = kv("txn", input=text).ok()
    assert result.lines == ["SUCCESS", "", "OK", "", p + "leader", "me"]
    assert kv("get", p + "lost").ok().out == ""


def test_txn_from_a_file_takes_the_failure_branch(kv, tmp_path):
    p = kv.prefix
    path = tmp_path / "txn.txt"
    path.write_text(f'version("{p}never") = "3"\n\nput {p}a 1\n\nput {p}b "two words"\ndel {p}a\n\n')
    result = kv("txn", "-f", str(path)).ok()
    assert result.lines == ["FAILURE", "", "OK", "", "0"]
    assert kv("get", p + "b", "--print-value-only").ok().out == "two words\n"


def test_txn_without_the_final_empty_line_still_runs(kv):
    p = kv.prefix
    result = kv("txn", input=f'create("{p}c") = "0"\n\nput {p}c 1\n').ok()
    assert result.lines == ["SUCCESS", "", "OK"]


@pytest.mark.parametrize("text, message", [
    ('bogus\n\n\n', "malformed comparison: bogus"),
    ('mod("k") > "x"\n\n\n', "invalid txn compare request"),
    ('\nfrobnicate k\n\n', "invalid txn request"),
    ('\nput\n\n', "invalid txn request"),
])
def test_malformed_txn_is_a_usage_error(kv, text, message):
    result = kv("txn", input=text)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err


def test_compact_then_old_revision_is_an_error_with_a_hint(kv):
    key = kv.prefix + "c"
    old = json.loads(kv("put", key, "1", "-w", "json").ok().out)["header"]["revision"]
    now = json.loads(kv("put", key, "2", "-w", "json").ok().out)["header"]["revision"]
    assert kv("compact", str(now)).ok().out == f"compacted revision {now}\n"
    result = kv("get", key, "--rev", str(old))
    assert result.code == 1
    assert result.err.startswith("Error: etcdserver: mvcc: required revision has been compacted — ")
    assert len(result.err.strip().splitlines()) == 1


def test_hex_prints_bytes_escaped(kv):
    kv("put", kv.prefix + "h", "ab").ok()
    assert kv("get", kv.prefix + "h", "--hex", "--print-value-only").ok().out == "\\x61\\x62\n"


def test_table_output_of_get(kv):
    p = kv.prefix
    kv("put", p + "k1", "v1").ok()
    kv("put", p + "key2", "value2").ok()
    lines = kv("get", p, "--prefix", "-w", "table").ok().lines
    assert lines[0] == lines[2] == lines[-1] and lines[0].startswith("+-")
    assert [c.strip() for c in lines[1].strip("|").split("|")][:2] == ["KEY", "VALUE"]
    assert len({len(line) for line in lines}) == 1  # aligned


def test_table_is_refused_where_etcdctl_has_none(kv):
    result = kv("put", kv.prefix + "t", "1", "-w", "table")
    assert result.code == 2
    assert "table not supported as output format" in result.err


def test_global_flags_before_or_after_the_command(kv):
    kv("put", kv.prefix + "g", "1").ok()
    before = kv("-w", "json", "get", kv.prefix + "g").ok().out
    after = kv("get", kv.prefix + "g", "-w", "json").ok().out
    assert json.loads(before)["kvs"] == json.loads(after)["kvs"]


def test_endpoints_come_from_the_environment(member):
    from cli_helpers import invoke

    result = invoke(None, "put", "env-endpoint", "yes", env={"RAFTKV_ENDPOINTS": member.endpoint}).ok()
    assert result.out == "OK\n"


@pytest.mark.parametrize("args", [
    ["get", "k", "--prefix", "--from-key"],
    ["get", "k", "end", "--prefix"],
    ["get", "k", "--sort-by", "NOPE"],
    ["get", "k", "--consistency", "x"],
    ["lease", "revoke", "not-hex"],
    ["member", "remove", "zz"],
    ["get"],
    ["no-such-verb"],
])
def test_usage_mistakes_exit_2_without_traceback(kv, args):
    result = kv(*args)
    assert result.code == 2
    assert "Error:" in result.err and "Traceback" not in result.err


def test_txn_interactive_prompts_like_etcdctl(kv):
    p = kv.prefix
    result = kv("txn", "-i", input=f'create("{p}i") = "0"\n\nput {p}i 1\n\n\n').ok()
    assert result.lines == ["compares:", "success requests (get, put, del):",
                            "failure requests (get, put, del):", "SUCCESS", "", "OK"]


def test_count_only(kv):
    for i in range(3):
        kv("put", f"{kv.prefix}n{i}", "x").ok()
    assert kv("get", kv.prefix, "--prefix", "--count-only").ok().out == "3\n"
    assert json.loads(kv("get", kv.prefix, "--prefix", "--count-only", "-w", "json").ok().out)["count"] == 3
