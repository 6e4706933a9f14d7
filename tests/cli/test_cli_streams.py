"""The long-running verbs as real processes: watch, lease keep-alive, lock,
elect. Each runs until Ctrl-C and then exits 0, without a traceback."""

from __future__ import annotations

import json

import pytest

from cli_helpers import Background, run

pytestmark = pytest.mark.timeout(90)


def until_watching(kv, watch: Background, key: str, timeout: float = 20.0) -> None:
    """Put ``key`` until the watch prints it: from then on, it sees every change."""
    import time

    deadline = time.monotonic() + timeout
    while key not in watch.out_lines:
        assert time.monotonic() < deadline, f"the watch never started:\n{watch.out}\n{watch.err}"
        kv("put", key, "probe").ok()
        time.sleep(0.3)
    time.sleep(0.3)  # let the last probes' lines arrive


def test_watch_prints_events_until_ctrl_c(kv):
    p = kv.prefix
    with Background("watch", p, "--prefix", "--prev-kv", endpoints=kv.endpoint) as w:
        until_watching(kv, w, p + "probe")
        kv("put", p + "k", "v1").ok()
        kv("put", p + "k", "v2").ok()
        kv("del", p + "k").ok()
        w.wait_for(lambda: w.out.count("DELETE") == 1, "the delete arrives")
        assert w.interrupt() == 0
    lines = w.out_lines[len(w.out_lines) - w.out_lines[::-1].index("probe"):]
    assert lines == ["PUT", p + "k", "v1",
                     "PUT", p + "k", "v1", p + "k", "v2",
                     "DELETE", p + "k", "v2", p + "k", ""]
    assert "Traceback" not in w.err and "Aborted" not in w.err


def test_watch_replays_from_a_revision_as_json(kv):
    p = kv.prefix
    first = json.loads(kv("put", p + "r", "1", "-w", "json").ok().out)["header"]["revision"]
    kv("put", p + "r", "2").ok()
    with Background("-w", "json", "watch", p + "r", "--rev", str(first), endpoints=kv.endpoint) as w:
        def replayed() -> list[dict]:
            return [e["kv"] for line in w.out_lines for e in json.loads(line)["Events"]]

        w.wait_for(lambda: len(replayed()) >= 2, "two replayed events")
        assert w.interrupt() == 0
    # as etcd does, the replay comes as one response carrying both events
    assert [e["mod_revision"] for e in replayed()] == [first, first + 1]
    assert json.loads(w.out_lines[0])["Header"]["revision"] == first + 1


def test_watch_on_a_compacted_revision_fails_with_etcdctls_message(kv):
    p = kv.prefix
    first = json.loads(kv("put", p + "c", "1", "-w", "json").ok().out)["header"]["revision"]
    now = json.loads(kv("put", p + "c", "2", "-w", "json").ok().out)["header"]["revision"]
    kv("compact", str(now)).ok()
    result = run("watch", p + "c", "--rev", str(first), endpoints=kv.endpoint)
    assert result.code == 1
    assert "watch was canceled (etcdserver: mvcc: required revision has been compacted)" in result.err
    assert "Error: watch is canceled by the server" in result.err


def test_lease_keep_alive_renews_until_revoked(kv):
    lease = kv("lease", "grant", "3").ok().out.split()[1]
    with Background("lease", "keep-alive", lease, endpoints=kv.endpoint) as k:
        k.wait_for(lambda: k.out.count("keepalived") >= 2, "two renewals", timeout=20)
        kv("lease", "revoke", lease).ok()
        k.wait_for(lambda: "expired or revoked" in k.out, "the end of the lease", timeout=20)
        assert k.process.wait(timeout=10) == 0
    assert k.out_lines[0] == f"lease {lease} keepalived with TTL(3)"
    assert k.out_lines[-1] == f"lease {lease} expired or revoked."


def test_lease_keep_alive_stops_on_ctrl_c(kv):
    lease = kv("lease", "grant", "30").ok().out.split()[1]
    with Background("lease", "keep-alive", lease, endpoints=kv.endpoint) as k:
        k.wait_for(lambda: "keepalived" in k.out, "a renewal")
        assert k.interrupt() == 0
    assert "Traceback" not in k.err


def test_lock_is_exclusive_and_released_on_ctrl_c(kv):
    name = kv.prefix + "lock"
    with Background("lock", name, endpoints=kv.endpoint) as first:
        first.wait_for(lambda: first.out_lines and first.out_lines[0].startswith(name + "/"), "first holds it")
        with Background("lock", name, endpoints=kv.endpoint) as second:
            import time

            time.sleep(1.5)
            assert second.out == "", "the second got the lock while the first held it"
            assert first.interrupt() == 0
            second.wait_for(lambda: second.out_lines and second.out_lines[0].startswith(name + "/"),
                            "second gets it once the first let go")
            assert second.interrupt() == 0
    assert first.out_lines[1] == ""  # key and (empty) value, as etcdctl prints the lock key
    assert kv("get", name, "--prefix").ok().out == ""  # both released their keys


def test_lock_runs_a_command_holding_it(kv):
    name = kv.prefix + "job"
    result = run("lock", name, "--", "sh", "-c", 'echo "$ETCD_LOCK_KEY $ETCD_LOCK_REV"; exit 3',
                 endpoints=kv.endpoint)
    assert result.code == 3  # the command's own exit code
    key, revision = result.out.split()
    assert key.startswith(name + "/") and int(revision) > 0
    assert kv("get", name, "--prefix").ok().out == ""


def test_elect_campaigns_and_listen_observes(kv):
    name = kv.prefix + "election"
    with Background("elect", "-l", name, endpoints=kv.endpoint) as observer:
        with Background("elect", name, "alpha", endpoints=kv.endpoint) as alpha:
            alpha.wait_for(lambda: alpha.out_lines[-1:] == ["alpha"], "alpha leads")
            with Background("elect", name, "beta", endpoints=kv.endpoint) as beta:
                observer.wait_for(lambda: "alpha" in observer.out_lines, "observer sees alpha")
                assert beta.out == ""
                assert alpha.interrupt() == 0  # resigns
                beta.wait_for(lambda: beta.out_lines[-1:] == ["beta"], "beta leads after alpha resigned")
                observer.wait_for(lambda: "beta" in observer.out_lines, "observer sees beta")
                assert beta.interrupt() == 0
        assert observer.interrupt() == 0
    assert alpha.out_lines[0].startswith(name + "/")
