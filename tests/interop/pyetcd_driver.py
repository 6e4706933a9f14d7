"""Runs one scenario of the real etcd Python client (etcd-sdk-python, module pyetcd).

Run as a separate process: pyetcd's generated protobuf modules define the same
fully-qualified names (etcdserverpb.*) as raftkv's own, and one process's
descriptor pool cannot hold both, so the pytest process never imports pyetcd.

stdin: one JSON object {"host", "port", "scenario", "params"}.
stdout: one JSON object, the scenario's result, on the last line.

Results hold only what should be identical between raftkv and etcd: lease ids
become L1, L2, ... in order of appearance, member ids and raft terms are left
out, and errors become {"error": <pyetcd exception class>, "detail": ...}.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback

import grpc
import pyetcd
from pyetcd import etcdrpc, events, exceptions

TIMEOUT = 10


class Ids:
    def __init__(self) -> None:
        self.names: dict[int, str] = {0: "0"}

    def __call__(self, lease_id: int) -> str:
        if lease_id not in self.names:
            self.names[lease_id] = f"L{len(self.names)}"
        return self.names[lease_id]


LEASES = Ids()


def b(x) -> str | None:
    return None if x is None else x.decode("utf-8", "backslashreplace")


def meta(value, m) -> dict | None:
    if m is None:
        return None
    return {"key": b(m.key), "value": b(value), "create": m.create_revision, "mod": m.mod_revision,
            "version": m.version, "lease": LEASES(m.lease_id), "header_rev": m.response_header.revision}


def kv(k) -> dict:
    return {"key": b(k.key), "value": b(k.value), "create": k.create_revision, "mod": k.mod_revision,
            "version": k.version, "lease": LEASES(k.lease)}


def error(e: BaseException) -> dict:
    if isinstance(e, grpc.RpcError) and hasattr(e, "code"):
        return {"error": type(e).__name__, "detail": f"{e.code().name}: {e.details()}"}
    detail = str(e)
    if isinstance(e, exceptions.RevisionCompactedError):
        detail = f"compacted_revision={e.compacted_revision}"
    return {"error": type(e).__name__, "detail": detail}


def attempt(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - the exception is the result
        return error(e)


def event(ev) -> dict:
    kind = "PUT" if isinstance(ev, events.PutEvent) else "DELETE" if isinstance(ev, events.DeleteEvent) else "?"
    out = {"type": kind, "key": b(ev.key), "value": b(ev.value), "mod": ev.mod_revision}
    raw = ev._event   # pyetcd's Event proxies prev_* to prev_kv's fields; take the message itself
    if raw.HasField("prev_kv"):
        out["prev"] = kv(raw.prev_kv)
    return out


# ---------------------------------------------------------------------------
# scenarios
# ---------------------------------------------------------------------------


def scenario_kv(c, p) -> dict:
    r = {}
    r["put1"] = c.put("a", "1").header.revision
    r["put2"] = c.put("b", "2").header.revision
    prev = c.put("a", "10", prev_kv=True)
    r["put_prev_kv"] = {"rev": prev.header.revision, "prev": kv(prev.prev_kv)}
    for k, v in [("c", "3"), ("foo/x", "fx"), ("foo/y", "fy"), ("fop", "p"), ("b", "22")]:
        c.put(k, v)
    r["get_a"] = meta(*c.get("a"))
    r["get_missing"] = list(c.get("missing"))
    r["get_a_rev2"] = meta(*c.get("a", revision=2))
    r["get_serializable"] = meta(*c.get("b", serializable=True))
    r["get_prefix"] = [meta(v, m) for v, m in c.get_prefix("foo/")]
    r["get_all_desc_by_mod"] = [meta(v, m) for v, m in c.get_all(sort_order="descend", sort_target="mod")]
    r["get_prefix_empty"] = attempt(lambda: [meta(v, m) for v, m in c.get_prefix("")])
    r["get_range"] = [meta(v, m) for v, m in c.get_range("b", "foo/y")]
    for target in ("key", "version", "create", "mod", "value"):
        for order in ("ascend", "descend"):
            r[f"get_all_{target}_{order}"] = [b(m.key) for _, m in
                                              c.get_all(sort_order=order, sort_target=target)]
    everything = dict(range_start=b"\0", range_end=b"\0")
    resp = c.get_range_response(**everything, limit=2)
    r["limit"] = {"keys": [b(k.key) for k in resp.kvs], "more": resp.more, "count": resp.count}
    resp = c.get_range_response(**everything, keys_only=True)
    r["keys_only"] = [(b(k.key), b(k.value)) for k in resp.kvs]
    resp = c.get_range_response(**everything, count_only=True)
    r["count_only"] = {"count": resp.count, "kvs": len(resp.kvs)}
    resp = c.get_prefix_response("f", min_mod_revision=5, max_mod_revision=8)
    r["mod_revision_window"] = [b(k.key) for k in resp.kvs]
    r["put_if_not_exists_new"] = c.put_if_not_exists("new", "n")
    r["put_if_not_exists_old"] = c.put_if_not_exists("new", "n2")
    r["replace_ok"] = c.replace("a", "10", "11")
    r["replace_stale"] = c.replace("a", "10", "12")
    r["delete"] = c.delete("c")
    r["delete_missing"] = c.delete("c")
    d = c.delete("b", prev_kv=True, return_response=True)
    r["delete_prev_kv"] = {"deleted": d.deleted, "prev": [kv(k) for k in d.prev_kvs], "rev": d.header.revision}
    d = c.delete_prefix("foo/")
    r["delete_prefix"] = {"deleted": d.deleted, "rev": d.header.revision}
    r["after"] = [meta(v, m) for v, m in c.get_all()]
    r["put_empty_key"] = attempt(c.put, "", "v")
    r["put_bad_lease"] = attempt(c.put, "k", "v", lease=424242)
    r["compact"] = attempt(c.compact, 5)
    r["get_compacted"] = attempt(lambda: meta(*c.get("a", revision=3)))
    r["get_future"] = attempt(lambda: meta(*c.get("a", revision=1000)))
    r["compact_again"] = attempt(c.compact, 4)
    r["compact_physical"] = attempt(c.compact, 6, physical=True)
    return r


def scenario_txn(c, p) -> dict:
    t = c.transactions
    r = {}
    c.put("k1", "v1")            # 2
    c.put("k2", "v2")            # 3
    c.put("k2", "v2b")           # 4
    ok, resps = c.transaction(
        compare=[t.value("k1") == "v1", t.version("k2") == 2, t.create("k1") == 2, t.mod("k2") > 3],
        success=[t.put("k1", "changed"), t.get("k2"), t.delete("k2", prev_kv=True)],
        failure=[t.put("failed", "1")])
    r["all_true"] = {"ok": ok, "n": len(resps),
                     "get": [meta(v, m) for v, m in resps[1]],
                     "delete_prev": [kv(k) for k in resps[2].response_delete_range.prev_kvs],
                     "put_rev": resps[0].response_put.header.revision}
    ok, resps = c.transaction(
        compare=[t.value("k1") == "v1"],
        success=[t.put("never", "1")],
        failure=[t.get("k1"), t.put("failure-branch", "yes", prev_kv=True)])
    r["value_false"] = {"ok": ok, "get": [meta(v, m) for v, m in resps[0]]}
    for name, cmp in [("value_ne", t.value("k1") != "x"), ("value_lt", t.value("k1") < "d"),
                      ("value_gt", t.value("k1") > "d"), ("version_lt", t.version("k1") < 2),
                      ("create_missing_eq_0", t.create("absent") == 0),
                      ("mod_missing_gt_0", t.mod("absent") > 0),
                      ("version_gt", t.version("k1") > 1), ("mod_lt", t.mod("k1") < 5)]:
        ok, _ = c.transaction(compare=[cmp], success=[], failure=[])
        r[name] = ok
    ok, resps = c.transaction(
        compare=[t.version("k1") > 0],
        success=[t.txn(compare=[t.value("k1") == "changed"], success=[t.put("nested", "yes")],
                       failure=[t.put("nested", "no")])],
        failure=[])
    r["nested"] = {"ok": ok, "inner_ok": resps[0].response_txn.succeeded}
    r["nested_value"] = meta(*c.get("nested"))
    r["range_compare"] = c.transaction(
        compare=[t.version("k", range_end="l") > 0], success=[], failure=[])[0]
    r["duplicate_put"] = attempt(c.transaction, compare=[],
                                 success=[t.put("d", "1"), t.put("d", "2")], failure=[])
    r["final"] = [meta(v, m) for v, m in c.get_all()]
    return r


def scenario_watch(c, p) -> dict:
    r = {}
    c.put("w/a", "1")    # 2
    c.put("w/a", "2")    # 3
    c.put("w/b", "3")    # 4
    c.delete("w/a")      # 5
    c.put("x", "no")     # 6

    # history through the iterator API
    it, cancel = c.watch_prefix("w/", start_revision=2, prev_kv=True)
    got = []
    for ev in it:
        got.append(event(ev))
        if len(got) == 4:
            cancel()
    r["history_prefix"] = got

    # live events through a callback
    seen, done = [], threading.Event()

    def callback(resp):
        if isinstance(resp, Exception):
            seen.append(error(resp))
            done.set()
            return
        seen.append({"header_rev": resp.header.revision, "events": [event(e) for e in resp.events]})
        if sum(len(s.get("events", [])) for s in seen) >= 3:
            done.set()
    wid = c.add_watch_prefix_callback("live/", callback)
    c.put("live/1", "a")
    c.put("elsewhere", "z")
    c.transactions  # noqa: B018
    c.transaction(compare=[], success=[c.transactions.put("live/2", "b"),
                                       c.transactions.put("live/3", "c")], failure=[])
    done.wait(TIMEOUT)
    c.cancel_watch(wid)
    r["live_callback"] = seen

    # watch_once, with and without an event in time
    def later():
        time.sleep(0.5)
        c.put("once", "now")
    threading.Thread(target=later, daemon=True).start()
    r["watch_once"] = attempt(lambda: event(c.watch_once("once", timeout=TIMEOUT)))
    r["watch_once_timeout"] = attempt(c.watch_once, "never", timeout=1)

    # single key watch from a revision; a deleted key's event
    it, cancel = c.watch("w/a", start_revision=3)
    got = []
    for ev in it:
        got.append(event(ev))
        if len(got) == 2:
            cancel()
    r["history_key"] = got

    # filters: no deletes / no puts
    it, cancel = c.watch_prefix("w/", start_revision=2, filters=[etcdrpc.WatchCreateRequest.NODELETE])
    got = []
    for ev in it:
        got.append(event(ev))
        if len(got) == 3:
            cancel()
    r["filter_nodelete"] = got
    it, cancel = c.watch_prefix("w/", start_revision=2, filters=[etcdrpc.WatchCreateRequest.NOPUT])
    got = []
    for ev in it:
        got.append(event(ev))
        cancel()
    r["filter_noput"] = got
    r["progress_notify_watch_created"] = attempt(
        lambda: c.cancel_watch(c.add_watch_callback("p", lambda resp: None, progress_notify=True)))

    # compaction, then a watch from below it
    c.compact(4)
    def first_event_below_compaction():
        it, cancel = c.watch("w/", start_revision=2)
        timer = threading.Timer(5, cancel)
        timer.start()
        try:
            for ev in it:
                return {"event": event(ev)}
            return {"ended": "without events"}
        finally:
            timer.cancel()
            cancel()
    r["watch_compacted"] = attempt(first_event_below_compaction)
    return r


def scenario_watch_batching(c, p) -> dict:
    """How a catch-up watch groups past events into responses (header revisions)."""
    c.put("w/a", "1")    # 2
    c.put("w/a", "2")    # 3
    c.put("w/b", "3")    # 4
    responses, cancel = c.watch_prefix_response("w/", start_revision=2)
    got, n = [], 0
    for resp in responses:
        got.append({"header_rev": resp.header.revision, "mods": [e.mod_revision for e in resp.events]})
        n += len(resp.events)
        if n >= 3:
            cancel()
    return {"responses": got}


def scenario_lease(c, p) -> dict:
    r = {}
    lease = c.lease(100)
    r["grant"] = {"id": LEASES(lease.id), "ttl": lease.ttl}
    c.put("l/a", "1", lease=lease)
    c.put("l/b", "2", lease=lease.id)
    info = c.get_lease_info(lease.id)
    r["info"] = {"id": LEASES(info.ID), "granted": info.grantedTTL, "ttl_ok": 98 <= info.TTL <= 100,
                 "keys": sorted(b(k) for k in info.keys)}
    r["lease_obj"] = {"granted_ttl": lease.granted_ttl, "keys": sorted(b(k) for k in lease.keys),
                      "remaining_ok": 98 <= lease.remaining_ttl <= 100}
    refreshed = lease.refresh()
    r["refresh"] = [{"id": LEASES(x.ID), "ttl": x.TTL} for x in refreshed]
    r["get_leased"] = meta(*c.get("l/a"))
    lease.revoke()
    r["after_revoke"] = [meta(v, m) for v, m in c.get_prefix("l/")]
    r["revoked_info"] = attempt(lambda: {"ttl": c.get_lease_info(lease.id).TTL})
    r["revoke_again"] = attempt(c.revoke_lease, lease.id)
    r["refresh_revoked"] = attempt(lambda: [{"ttl": x.TTL} for x in c.refresh_lease(lease.id)])
    own = c.lease(50, lease_id=0x1234)
    r["grant_with_id"] = {"id": hex(own.id), "ttl": own.ttl}
    r["grant_same_id"] = attempt(lambda: c.lease(50, lease_id=0x1234).id)
    r["grant_too_big"] = attempt(lambda: c.lease(9_000_000_001).ttl)
    short = c.lease(2)
    c.put("short", "x", lease=short)
    r["short_ttl"] = short.ttl
    deadline = time.monotonic() + 15
    while c.get("short")[0] is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    r["expired_key_gone"] = c.get("short")[0] is None
    r["expired_info_ttl"] = attempt(lambda: c.get_lease_info(short.id).TTL)
    return r


def scenario_lock(c, p) -> dict:
    r = {}
    lock = c.lock("res", ttl=10)
    r["acquire"] = lock.acquire(timeout=5)
    r["is_acquired"] = lock.is_acquired()
    v, m = c.get("/locks/res")
    r["lock_key"] = {"exists": v is not None, "leased": m.lease_id != 0, "version": m.version}
    other = pyetcd.client(p["host"], p["port"], timeout=TIMEOUT)
    try:
        contender = other.lock("res", ttl=10)
        start = time.monotonic()
        r["contender_times_out"] = contender.acquire(timeout=1) is False
        r["contender_waited"] = time.monotonic() - start >= 0.9

        result = {}

        def wait_for_it():
            result["acquired"] = contender.acquire(timeout=10)
        t = threading.Thread(target=wait_for_it)
        t.start()
        time.sleep(0.5)
        r["release"] = lock.release()
        t.join(15)
        r["contender_after_release"] = result.get("acquired")
        r["contender_is_acquired"] = contender.is_acquired()
        r["first_is_acquired"] = lock.is_acquired()
        r["contender_refresh"] = [x.TTL for x in contender.refresh()]
        r["contender_release"] = contender.release()
        r["release_again"] = contender.release()
    finally:
        other.close()
    with c.lock("ctx", ttl=5) as held:
        r["context_manager_acquired"] = held.is_acquired()
    r["context_manager_released"] = c.get("/locks/ctx")[0] is None
    return r


def scenario_maintenance(c, p) -> dict:
    r = {}
    c.put("a", "1")
    st = attempt(c.status)
    r["status"] = st if isinstance(st, dict) else {
        "version": st.version, "leader_is_member": st.leader is not None,
        "raft_index_positive": st.raft_index > 0, "raft_term_positive": st.raft_term > 0}
    r["members"] = [{"name": m.name, "peer_urls": len(m.peer_urls), "client_urls": len(m.client_urls)}
                    for m in c.members]
    r["hash"] = attempt(lambda: type(c.hash()).__name__)
    r["alarms"] = attempt(lambda: list(c.list_alarms()))
    r["defragment"] = attempt(c.defragment)
    return r


SCENARIOS = {name[len("scenario_"):]: fn for name, fn in globals().items() if name.startswith("scenario_")}


def main() -> None:
    request = json.loads(sys.stdin.read())
    client = pyetcd.client(request["host"], request["port"], timeout=TIMEOUT)
    try:
        result = SCENARIOS[request["scenario"]](client, {**request, **request.get("params", {})})
    except Exception as e:  # noqa: BLE001
        result = {"driver_exception": traceback.format_exc(), **error(e)}
    finally:
        client.close()
    print(json.dumps(result, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
