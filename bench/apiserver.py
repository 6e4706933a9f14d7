"""``apiserver``: `raftkv apiserver` against the object layer it serves, on the same data.

    python -m bench apiserver --pods 10000 --watchers 100 --updates 50

One raftkv member and one ``raftkv apiserver`` over it, real processes on
loopback. ``--pods`` Pods are created in namespace ``bench`` through the
object layer (16 threads), then, each measured twice, once through the
apiserver's REST API (aiohttp, JSON) and once through the object layer
(``ObjectStore`` on ``raftkv.Client``) in this process:

- list: every Pod of the namespace in one LIST (three times: the median),
  with a label selector matching half of them, and in pages of ``--page``;
- watch: ``--watchers`` watches of the namespace's Pods from the list's
  resourceVersion, then ``--updates`` label patches 20 ms apart; each
  watcher's delay from the patch's answer to the event's arrival, and how
  many of the events arrived.

Results as JSON on stdout, a table on stderr, and with ``--out``
``<out>/apiserver-<pods>.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import click

from bench.scenario import ms, pct

NAMESPACE = "bench"
UPDATE_EVERY = 0.02
ARRIVAL_WAIT = 10.0  # after the last update, for events still on their way


def pod(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"pod-{i:06d}", "namespace": NAMESPACE,
                         "labels": {"app": "web" if i % 2 else "db", "n": str(i)}},
            "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}}


@dataclass
class ListFigures:
    all_ms: float            # median of three
    selected_ms: float       # labelSelector app=web, median of three
    paged_ms: float          # every page of --page, one walk
    items: int


@dataclass
class WatchFigures:
    watchers: int
    updates: int
    delivered: int           # events that arrived, of watchers * updates
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


@dataclass
class ApiserverResult:
    pods: int
    create_per_s: float
    list_rest: ListFigures
    list_objects: ListFigures
    watch_rest: WatchFigures
    watch_objects: WatchFigures


def _median(samples: list[float]) -> float:
    return ms(sorted(samples)[len(samples) // 2])


# ---- through the REST API ------------------------------------------------------

async def _list_rest(url: str, page: int, expect: int) -> ListFigures:
    import aiohttp

    base = f"{url}/api/v1/namespaces/{NAMESPACE}/pods"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        async def get(params: dict) -> dict:
            async with http.get(base, params=params) as r:
                if r.status != 200:
                    raise RuntimeError(f"LIST answered {r.status}: {await r.text()}")
                return json.loads(await r.read())

        def timed(params: dict):
            async def run() -> tuple[float, dict]:
                began = time.monotonic()
                body = await get(params)
                return time.monotonic() - began, body
            return run()

        every, selected = [], []
        for _ in range(3):
            took, body = await timed({})
            if len(body["items"]) != expect:
                raise RuntimeError(f"LIST gave {len(body['items'])} pods, not {expect}")
            every.append(took)
            took, body = await timed({"labelSelector": "app=web"})
            selected.append(took)
        began, items, token = time.monotonic(), 0, None
        while True:
            params = {"limit": str(page)}
            if token:
                params["continue"] = token
            body = await get(params)
            items += len(body["items"])
            token = body["metadata"].get("continue")
            if not token:
                break
        if items != expect:
            raise RuntimeError(f"the pages held {items} pods, not {expect}")
        return ListFigures(_median(every), _median(selected), ms(time.monotonic() - began), items)


async def _watch_rest(url: str, resource_version: str, watchers: int, store, updates: int) -> WatchFigures:
    import aiohttp

    arrivals: list[dict[str, float]] = [{} for _ in range(watchers)]
    ready = 0
    all_ready = asyncio.Event()
    base = f"{url}/api/v1/namespaces/{NAMESPACE}/pods"

    async def watcher(n: int, http) -> None:
        nonlocal ready
        params = {"watch": "true", "resourceVersion": resource_version}
        async with http.get(base, params=params) as r:
            if r.status != 200:
                raise RuntimeError(f"watch answered {r.status}")
            ready += 1
            if ready == watchers:
                all_ready.set()
            async for line in r.content:
                event = json.loads(line)
                rv = event["object"]["metadata"]["resourceVersion"]
                arrivals[n].setdefault(rv, time.monotonic())

    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    connector = aiohttp.TCPConnector(limit=watchers + 1)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        tasks = [asyncio.create_task(watcher(n, http)) for n in range(watchers)]
        await asyncio.wait_for(all_ready.wait(), 60)
        written = await asyncio.get_running_loop().run_in_executor(None, _write_updates, store, updates, "rest")
        deadline = time.monotonic() + ARRIVAL_WAIT
        while not _all_arrived(written, arrivals) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return _delays(written, arrivals)


# ---- through the object layer ----------------------------------------------------

def _list_objects(store, page: int, expect: int) -> ListFigures:
    every, selected = [], []
    for _ in range(3):
        began = time.monotonic()
        listed = store.list("pods", NAMESPACE)
        every.append(time.monotonic() - began)
        if len(listed.items) != expect:
            raise RuntimeError(f"the object layer listed {len(listed.items)} pods, not {expect}")
        began = time.monotonic()
        store.list("pods", NAMESPACE, label_selector="app=web")
        selected.append(time.monotonic() - began)
    began, items, token = time.monotonic(), 0, None
    while True:
        listed = store.list("pods", NAMESPACE, limit=page, continue_token=token)
        items += len(listed.items)
        token = listed.continue_token
        if not token:
            break
    return ListFigures(_median(every), _median(selected), ms(time.monotonic() - began), items)


def _watch_objects(store, resource_version: str, watchers: int, updates: int) -> WatchFigures:
    arrivals: list[dict[str, float]] = [{} for _ in range(watchers)]
    watches = [store.watch("pods", NAMESPACE, resource_version=resource_version) for _ in range(watchers)]
    stop = threading.Event()

    def consume(n: int) -> None:
        while not stop.is_set():
            event = watches[n].next(timeout=0.2)
            if event is not None:
                arrivals[n].setdefault(event.resource_version, time.monotonic())

    threads = [threading.Thread(target=consume, args=(n,), daemon=True) for n in range(watchers)]
    for t in threads:
        t.start()
    try:
        written = _write_updates(store, updates, "objects")
        deadline = time.monotonic() + ARRIVAL_WAIT
        while not _all_arrived(written, arrivals) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
        for w in watches:
            w.stop()
    return _delays(written, arrivals)


# ---- shared --------------------------------------------------------------------

def _write_updates(store, updates: int, round_name: str) -> dict[str, float]:
    """Patch a label of one Pod after another (to a value of this round: a
    patch that changes nothing writes nothing): resourceVersion -> when the
    patch was answered."""
    written: dict[str, float] = {}
    for j in range(updates):
        began = time.monotonic()
        label = {"touched": f"{round_name}-{j}"}
        patched = store.patch("pods", f"pod-{j:06d}", {"metadata": {"labels": label}}, NAMESPACE)
        written[patched["metadata"]["resourceVersion"]] = time.monotonic()
        time.sleep(max(0.0, UPDATE_EVERY - (time.monotonic() - began)))
    return written


def _all_arrived(written: dict[str, float], arrivals: list[dict[str, float]]) -> bool:
    return all(rv in seen for seen in arrivals for rv in written)


def _delays(written: dict[str, float], arrivals: list[dict[str, float]]) -> WatchFigures:
    delays = sorted(max(0.0, seen[rv] - at) for seen in arrivals for rv, at in written.items() if rv in seen)
    return WatchFigures(watchers=len(arrivals), updates=len(written), delivered=len(delays),
                        p50_ms=ms(pct(delays, 0.50)), p99_ms=ms(pct(delays, 0.99)),
                        max_ms=ms(delays[-1]) if delays else None)


def _wait_healthy(url: str, process: subprocess.Popen, log_path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            with open(log_path) as f:
                raise RuntimeError(f"the apiserver exited: {f.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("the apiserver did not become healthy")


def measure(pods: int, watchers: int, updates: int, page: int = 500) -> ApiserverResult:
    from bench.harness import started_cluster
    from raftkv import Client
    from raftkv.addresses import free_ports
    from raftkv.objects import ObjectStore

    with started_cluster("raftkv", 1, "apiserver") as cluster:
        (port,) = free_ports(1)
        url = f"http://127.0.0.1:{port}"
        log_path = os.path.join(cluster.base_dir, "apiserver.log")
        with open(log_path, "w") as log_file:
            apiserver = subprocess.Popen(
                [sys.executable, "-m", "raftkv", "apiserver", "--etcd-servers", f"http://{cluster.endpoints[0]}",
                 "--bind-address", "127.0.0.1", "--secure-port", str(port)],
                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_healthy(url, apiserver, log_path)
            with Client(cluster.endpoints, timeout=30) as client:
                store = ObjectStore(client)
                store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
                began = time.monotonic()
                with ThreadPoolExecutor(16) as pool:
                    list(pool.map(lambda i: store.create(pod(i)), range(pods)))
                create_per_s = round(pods / (time.monotonic() - began), 1)
                list_rest = asyncio.run(_list_rest(url, page, pods))
                list_objects = _list_objects(store, page, pods)
                rv = store.list("pods", NAMESPACE, limit=1).resource_version
                watch_rest = asyncio.run(_watch_rest(url, rv, watchers, store, updates))
                rv = store.list("pods", NAMESPACE, limit=1).resource_version
                watch_objects = _watch_objects(store, rv, watchers, updates)
        finally:
            apiserver.kill()
            apiserver.wait(10)
    return ApiserverResult(pods, create_per_s, list_rest, list_objects, watch_rest, watch_objects)


def table(r: ApiserverResult) -> str:
    lines = ["| figure | REST (raftkv apiserver) | object layer |", "|---|---:|---:|",
             f"| LIST {r.pods} pods, ms | {r.list_rest.all_ms} | {r.list_objects.all_ms} |",
             f"| LIST with labelSelector app=web (half), ms | {r.list_rest.selected_ms} "
             f"| {r.list_objects.selected_ms} |",
             f"| LIST in pages, every page, ms | {r.list_rest.paged_ms} | {r.list_objects.paged_ms} |"]
    for label, w, o in (("delivered", r.watch_rest.delivered, r.watch_objects.delivered),
                        ("delay p50, ms", r.watch_rest.p50_ms, r.watch_objects.p50_ms),
                        ("delay p99, ms", r.watch_rest.p99_ms, r.watch_objects.p99_ms),
                        ("delay max, ms", r.watch_rest.max_ms, r.watch_objects.max_ms)):
        lines.append(f"| watch, {r.watch_rest.watchers} watchers x {r.watch_rest.updates} updates: {label} "
                     f"| {w} | {o} |")
    return "\n".join(lines)


@click.command("apiserver")
@click.option("--pods", default=10_000, show_default=True)
@click.option("--watchers", default=100, show_default=True)
@click.option("--updates", default=50, show_default=True)
@click.option("--page", default=500, show_default=True, help="limit of each page of the paged LIST.")
@click.option("--out", default=None, help="Folder for apiserver-<pods>.json.")
def apiserver(pods: int, watchers: int, updates: int, page: int, out: str | None) -> None:
    """LIST and watch through raftkv apiserver, next to the object layer on the same data."""
    result = measure(pods, watchers, updates, page)
    click.echo(json.dumps(asdict(result)))
    click.echo(table(result), err=True)
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, f"apiserver-{pods}.json"), "w") as f:
            json.dump({"benchmark": "apiserver", **asdict(result)}, f, indent=1)
