"""One session of python-etcd3 (PyPI etcd3 0.12) against a server, as a child process.

Run with the Python of python-etcd3's own venv (it needs protobuf 3; see
test_interop_etcd3.py). stdin: {"host", "port"}; stdout: the session's
results as one JSON object, holding only what must be identical between
raftkv and etcd (lease and member ids become names in order of appearance).
"""

from __future__ import annotations

import io
import json
import sys
import threading
import traceback

import etcd3
from etcd3 import events, exceptions

TIMEOUT = 10


class Ids:
    def __init__(self) -> None:
        self.names: dict[int, str] = {0: "0"}

    def __call__(self, value: int) -> str:
        if value not in self.names:
            self.names[value] = f"ID{len(self.names)}"
        return self.names[value]


IDS = Ids()


def text(x) -> str | None:
    return None if x is None else x.decode("utf-8", "backslashreplace")


def got(value_and_meta) -> dict | None:
    value, meta = value_and_meta
    if meta is None:
        return None
    return {"key": text(meta.key), "value": text(value), "create": meta.create_revision,
            "mod": meta.mod_revision, "version": meta.version, "lease": IDS(meta.lease_id)}


def attempt(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - the exception is the result
        return {"error": type(e).__name__, "detail": str(e) if isinstance(e, exceptions.Etcd3Exception) else ""}


def event(ev) -> list:
    kind = "PUT" if isinstance(ev, events.PutEvent) else "DELETE" if isinstance(ev, events.DeleteEvent) else "?"
    return [kind, text(ev.key), text(ev.value), ev.mod_revision]


def session(c: etcd3.Etcd3Client) -> dict:
    r: dict = {}
    r["put"] = [c.put(f"/s/{k}", v).header.revision for k, v in (("a", "1"), ("b", "2"), ("c", "3"))]
    r["get"] = got(c.get("/s/a"))
    r["get_missing"] = got(c.get("/s/zz"))
    r["prefix"] = [got(x) for x in c.get_prefix("/s/", sort_order="descend")]
    r["range"] = [got(x) for x in c.get_range("/s/a", "/s/c")]
    r["put_if_not_exists"] = [c.put_if_not_exists("/s/a", "x"), c.put_if_not_exists("/s/d", "4")]
    r["replace"] = [c.replace("/s/a", "1", "one"), c.replace("/s/a", "1", "uno"), got(c.get("/s/a"))]
    r["put_prev_kv"] = text(c.put("/s/b", "two", prev_kv=True).prev_kv.value)
    ok, responses = c.transaction(
        compare=[c.transactions.value("/s/a") == "one", c.transactions.version("/s/b") > 1],
        success=[c.transactions.put("/s/t", "yes"), c.transactions.get("/s/a")],
        failure=[c.transactions.put("/s/t", "no")])
    r["txn"] = [ok, [[got(x) for x in resp] if isinstance(resp, list) else type(resp).__name__
                     for resp in responses], got(c.get("/s/t"))]
    r["delete"] = [c.delete("/s/c"), c.delete("/s/c"), text(c.delete("/s/d", prev_kv=True,
                                                                      return_response=True).prev_kvs[0].value)]

    lease = c.lease(60)
    c.put("/s/leased", "v", lease=lease)
    info = c.get_lease_info(lease.id)
    r["lease"] = [IDS(lease.id), lease.granted_ttl, info.grantedTTL, 55 <= info.TTL <= 60,
                  [text(k) for k in info.keys], got(c.get("/s/leased"))["lease"] == IDS(lease.id)]
    r["lease_refresh"] = [resp.TTL for resp in lease.refresh()]
    lease.revoke()
    r["after_revoke"] = [got(c.get("/s/leased")), c.get_lease_info(lease.id).TTL]

    events_seen, cancel = c.watch_prefix("/s/", start_revision=2)
    seen = []
    for ev in events_seen:
        seen.append(event(ev))
        if len(seen) == 6:
            break
    cancel()
    r["watch_from_2"] = seen
    heard: list = []
    done = threading.Event()

    def callback(response):
        heard.extend(event(ev) for ev in getattr(response, "events", []))
        if heard:
            done.set()
    watch_id = c.add_watch_callback("/s/live", callback)
    c.put("/s/live", "now")
    r["watch_callback"] = [done.wait(TIMEOUT), heard]
    c.cancel_watch(watch_id)

    revision = c.put("/s/last", "x").header.revision
    c.compact(revision - 1)
    r["compacted_watch"] = attempt(lambda: next(iter(c.watch("/s/a", start_revision=2)[0])))
    lock = c.lock("resource", ttl=30)
    r["lock"] = [lock.acquire(timeout=5), lock.is_acquired(), c.lock("resource", ttl=30).acquire(timeout=0.5)]
    lock.release()
    r["lock_after_release"] = [lock.is_acquired(), c.lock("resource", ttl=30).acquire(timeout=5)]

    status = c.status()
    r["status"] = [status.version, status.leader is not None,
                   status.db_size >= 0, status.raft_index > 0]
    r["members"] = sorted((m.name, [u.rsplit(":", 1)[0] for u in m.client_urls]) for m in c.members)
    r["alarms"] = [list(c.list_alarms())]
    c.defragment()
    r["hash_is_int"] = isinstance(c.hash(), int)
    snapshot = io.BytesIO()
    c.snapshot(snapshot)
    r["snapshot_bytes"] = snapshot.tell() > 0
    r["delete_prefix"] = c.delete_prefix("/s/").deleted
    return r


def main() -> None:
    request = json.loads(sys.stdin.read())
    client = etcd3.client(request["host"], request["port"], timeout=TIMEOUT)
    try:
        result = session(client)
    except Exception as e:  # noqa: BLE001
        result = {"driver_exception": traceback.format_exc(), "error": type(e).__name__}
    finally:
        client.close()
    print(json.dumps(result, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
