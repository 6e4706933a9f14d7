"""Watches through the apiserver hold no thread of its request pool: with
more watches open than the pool has threads, a write is answered at once and
every watcher gets its event (each watch used to hold a pool thread while
it waited, so the others, and every other request, queued behind)."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from aiohttp import web

import raftkv
from raftkv.addresses import free_ports
from raftkv.apiserver.app import ApiServer
from raftkv.objects import ObjectStore

pytestmark = pytest.mark.timeout(120)

WATCHES = 20
POOL = 2


async def _scenario(url: str) -> tuple[float, list[str | None]]:
    pods = f"{url}/api/v1/namespaces/default/pods"
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        async with http.post(pods, json=body) as r:
            assert r.status == 201, await r.text()
            version = (await r.json())["metadata"]["resourceVersion"]
        streams = [await http.get(pods, params={"watch": "true", "resourceVersion": version})
                   for _ in range(WATCHES)]
        try:
            began = time.monotonic()
            patch = {"metadata": {"labels": {"touched": "yes"}}}
            async with http.patch(f"{pods}/p", data=json.dumps(patch),
                                  headers={"Content-Type": "application/merge-patch+json"}) as r:
                assert r.status == 200, await r.text()
            answered_in = time.monotonic() - began

            async def first_event(stream) -> str | None:
                line = await stream.content.readline()
                return json.loads(line)["object"]["metadata"]["labels"].get("touched")

            seen = await asyncio.wait_for(asyncio.gather(*(first_event(s) for s in streams)), 5.0)
        finally:
            for s in streams:
                s.close()
    return answered_in, list(seen)


def test_more_watches_than_pool_threads_hold_up_nothing(tmp_path):
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"

    async def main() -> tuple[float, list[str | None]]:
        runner = web.AppRunner(ApiServer(ObjectStore(kv), max_workers=POOL).application(), handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            return await _scenario(url)
        finally:
            await runner.cleanup()

    with raftkv.open(str(tmp_path / "store")) as kv:
        answered_in, seen = asyncio.run(main())
    assert answered_in < 2.0, f"the patch waited {answered_in:.2f} s for a thread"
    assert seen == ["yes"] * WATCHES
