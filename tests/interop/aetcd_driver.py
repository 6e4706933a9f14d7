"""One session of aetcd (the asyncio etcd client) against a server, as a child process.

A child process because aetcd's generated protobuf modules define the same
names (etcdserverpb.*) as raftkv's, and one descriptor pool cannot hold both.
stdin: {"host", "port"}; stdout: the session's results as one JSON object,
holding only what must be identical between raftkv and etcd.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback

import aetcd

TIMEOUT = 10


def text(x) -> str | None:
    return None if x is None else x.decode("utf-8", "backslashreplace")


def kv(item) -> dict | None:
    if item is None:
        return None
    return {"key": text(item.key), "value": text(item.value), "create": item.create_revision,
            "mod": item.mod_revision, "version": item.version, "leased": bool(item.lease)}


async def attempt(coroutine):
    try:
        return await coroutine
    except Exception as e:  # noqa: BLE001 - the exception is the result
        return {"error": type(e).__name__}


async def session(c: aetcd.Client) -> dict:
    r: dict = {}
    r["put"] = [(await c.put(f"/s/{k}".encode(), v.encode())).header.revision for k, v in (("a", "1"), ("b", "2"))]
    r["get"] = kv(await c.get(b"/s/a"))
    r["get_missing"] = kv(await c.get(b"/s/zz"))
    r["prefix"] = [kv(x) for x in await c.get_prefix(b"/s/", sort_order="descend")]
    r["range"] = [kv(x) for x in await c.get_range(b"/s/a", b"/s/b")]
    r["all_keys"] = [text(x.key) for x in await c.get_all()]
    r["replace"] = [await c.replace(b"/s/a", b"1", b"one"), await c.replace(b"/s/a", b"1", b"uno")]
    r["put_prev_kv"] = kv((await c.put(b"/s/b", b"two", prev_kv=True)).prev_kv)
    ok, responses = await c.transaction(
        compare=[c.transactions.value(b"/s/a") == b"one", c.transactions.version(b"/s/b") > 1],
        success=[c.transactions.put(b"/s/t", b"yes"), c.transactions.get(b"/s/a")],
        failure=[c.transactions.put(b"/s/t", b"no")])
    r["txn"] = [ok, len(responses), kv(await c.get(b"/s/t"))]
    deleted = await c.delete(b"/s/b", prev_kv=True)
    r["delete"] = [deleted.deleted, kv(deleted.prev_kv), await c.delete(b"/s/b")]

    lease = await c.lease(60)
    await c.put(b"/s/leased", b"v", lease=lease)
    info = await c.get_lease_info(lease.id)
    r["lease"] = [info.grantedTTL, 55 <= info.TTL <= 60, [text(k) for k in info.keys]]
    r["lease_refresh"] = (await c.refresh_lease(lease.id)).TTL
    await c.revoke_lease(lease.id)
    r["after_revoke"] = [kv(await c.get(b"/s/leased")), (await c.get_lease_info(lease.id)).TTL]

    watch = await c.watch_prefix(b"/s/", start_revision=2)
    seen = []
    async for ev in watch:
        seen.append([str(ev.kind), text(ev.kv.key), text(ev.kv.value), ev.kv.mod_revision])
        if len(seen) == 6:
            break
    await watch.cancel()
    r["watch_from_2"] = seen

    revision = (await c.put(b"/s/last", b"x")).header.revision
    await c.compact(revision - 1)

    async def first_event_below_compaction():
        w = await c.watch(b"/s/a", start_revision=2)
        try:
            async for ev in w:
                return ev.kv.mod_revision
        finally:
            await w.cancel()
    r["compacted_watch"] = await attempt(asyncio.wait_for(first_event_below_compaction(), TIMEOUT))
    lock = c.lock(b"resource", ttl=30)
    await lock.acquire()
    r["lock"] = [await lock.is_acquired()]
    await lock.release()
    r["lock_after_release"] = [await lock.is_acquired()]

    status = await c.status()
    r["status"] = [status.version, status.leader is not None, status.raft_index > 0]
    r["members"] = sorted([m.name async for m in c.members()])
    r["alarms"] = [str(a) async for a in c.list_alarms()]
    r["hash_is_int"] = isinstance(await c.hash(), int)
    r["delete_prefix"] = (await c.delete_prefix(b"/s/")).deleted
    return r


async def main() -> None:
    request = json.loads(sys.stdin.read())
    client = aetcd.Client(request["host"], request["port"], timeout=TIMEOUT)
    try:
        result = await session(client)
    except Exception as e:  # noqa: BLE001
        result = {"driver_exception": traceback.format_exc(), "error": type(e).__name__}
    finally:
        await client.close()
    print(json.dumps(result, sort_keys=True, default=str), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
