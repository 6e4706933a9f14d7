"""etcd's JSON gateway, side by side: curl and etcd3gw (the gateway client
OpenStack uses) against etcd's gateway (on its client port) and raftkv's (on
--listen-client-http-urls), the answers compared after ids are normalized."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

import pytest
from interop_tools import ETCD_BIN, ETCD_MISSING, EtcdServer, Normalizer, RaftkvServer, identify

from raftkv.addresses import free_ports

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")]


@dataclass
class Gateway:
    server: EtcdServer | RaftkvServer
    url: str  # where its gateway answers
    norm: Normalizer | None = None
    steps: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.server.kind


@pytest.fixture
def gateways(tmp_path):
    if not os.path.exists(ETCD_BIN):
        pytest.skip(ETCD_MISSING)
    etcd = raftkv = None
    try:
        etcd = EtcdServer(tmp_path / "etcd")
        (port,) = free_ports(1)
        raftkv = RaftkvServer(tmp_path / "raftkv", extra_args=[f"--listen-client-http-urls=http://127.0.0.1:{port}"])
        etcd.wait_ready()
        raftkv.wait_ready()
        pair = [Gateway(etcd, f"http://{etcd.endpoints[0]}"), Gateway(raftkv, f"http://127.0.0.1:{port}")]
        for gw in pair:
            gw.norm = identify(gw.server)
        yield pair
    finally:
        for server in (etcd, raftkv):
            if server is not None:
                server.stop()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def curl(gw: Gateway, path: str, body: str | None = None, *, method: str = "POST", seconds: float = 5,
         token: str | None = None) -> tuple[int, str]:
    args = ["curl", "-s", "-N", "--max-time", str(seconds), "-o", "-", "-w", "\n%{http_code}", "-X", method,
            gw.url + path, *(["-H", f"Authorization: {token}"] if token else [])]
    if body is not None:
        args += ["-d", body]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 10, check=False).stdout
    text, _, status = out.rpartition("\n")
    return int(status), text


def normalized(gw: Gateway, text: str) -> str:
    return re.sub(r'"raft_term":"\d+"', '"raft_term":"<TERM>"', gw.norm(text))


def record(gw: Gateway, path: str, body: str | None = None, **kw) -> str:
    status, text = curl(gw, path, body, **kw)
    gw.steps.append(f"$ {kw.get('method', 'POST')} {gw.norm(path)} {gw.norm(body or '')}\n{status}\n"
                    f"{normalized(gw, text)}")
    return text


def compare(a: Gateway, b: Gateway) -> None:
    if os.environ.get("INTEROP_SHOW"):  # what etcd answered, normalized
        print("\n\n".join(a.steps))
    differing = [f"--- etcd:\n{x}\n--- raftkv:\n{y}" for x, y in zip(a.steps, b.steps) if x != y]
    assert len(a.steps) == len(b.steps)
    assert not differing, "raftkv's gateway answers differ from etcd's:\n" + "\n".join(differing)


def walkthrough(gw: Gateway) -> None:
    foo = b64("foo")
    record(gw, "/v3/kv/put", json.dumps({"key": foo, "value": b64("bar")}))
    record(gw, "/v3/kv/range", json.dumps({"key": foo}))
    record(gw, "/v3/kv/range", json.dumps({"key": foo, "keys_only": True, "unknown_field": 1}))
    record(gw, "/v3/kv/range", "{}")
    record(gw, "/v3/kv/put", json.dumps({"key": b64("foo2"), "value": b64("x"), "prev_kv": True}))
    record(gw, "/v3/kv/range", json.dumps({"key": foo, "range_end": b64("fop"), "sort_order": "DESCEND",
                                           "count_only": True}))
    record(gw, "/v3/kv/txn", json.dumps({
        "compare": [{"key": foo, "result": "EQUAL", "target": "VALUE", "value": b64("bar")}],
        "success": [{"request_put": {"key": foo, "value": b64("baz"), "prev_kv": True}},
                    {"request_range": {"key": foo}}],
        "failure": [{"request_delete_range": {"key": foo}}]}))
    record(gw, "/v3/kv/deleterange", json.dumps({"key": b64("foo2"), "prev_kv": True}))
    lease = json.loads(record(gw, "/v3/lease/grant", json.dumps({"TTL": "60"})))["ID"]
    record(gw, "/v3/kv/put", json.dumps({"key": b64("leased"), "value": b64("v"), "lease": lease}))
    status, text = curl(gw, "/v3/lease/timetolive", json.dumps({"ID": lease, "keys": True}))
    ttl = json.loads(text)
    gw.steps.append(f"timetolive: {status} grantedTTL={ttl['grantedTTL']} keys={ttl['keys']} "
                    f"ttl in range={55 <= int(ttl['TTL']) <= 60}")
    record(gw, "/v3/lease/leases", "{}")
    status, text = curl(gw, "/v3/lease/keepalive", json.dumps({"ID": lease}))
    gw.steps.append(f"keepalive: {status} {[json.loads(line)['result']['TTL'] for line in text.splitlines()]}")
    record(gw, "/v3/lease/revoke", json.dumps({"ID": lease}))
    record(gw, "/v3/lease/revoke", json.dumps({"ID": lease}))
    record(gw, "/v3/kv/compaction", json.dumps({"revision": "3"}))
    record(gw, "/v3/kv/range", json.dumps({"key": foo, "revision": "2"}))
    record(gw, "/v3/kv/compaction", json.dumps({"revision": "3"}))
    # a watch from the start: the history since revision 4, then nothing more within the time allowed
    record(gw, "/v3/watch", json.dumps({"create_request": {"key": foo, "range_end": b64("fop"),
                                                           "start_revision": "4", "prev_kv": True}}),
           seconds=2)
    record(gw, "/v3/maintenance/alarm", "{}")
    status, text = curl(gw, "/v3/maintenance/status", "{}")
    gw.steps.append(f"status: {status} {sorted(json.loads(text))}")
    record(gw, "/v3/cluster/member/list", "{}")
    record(gw, "/v3/cluster/member/remove", json.dumps({"ID": "1"}))
    record(gw, "/v3/election/leader", json.dumps({"name": b64("nobody")}))
    record(gw, "/v3/kv/nothing", "{}")
    record(gw, "/v3/kv/range", method="GET")
    status, _ = curl(gw, "/v3/kv/range", "not json")
    gw.steps.append(f"a body that is not JSON: {status}")
    record(gw, "/version", method="GET")
    record(gw, "/health", method="GET")


def test_curl_walkthrough(gateways):
    for gw in gateways:
        walkthrough(gw)
    compare(*gateways)


def auth_walkthrough(gw: Gateway) -> None:
    record(gw, "/v3/auth/enable", "{}")
    record(gw, "/v3/auth/user/add", json.dumps({"name": "root", "password": "rootpw"}))
    record(gw, "/v3/auth/role/add", json.dumps({"name": "root"}))
    record(gw, "/v3/auth/user/grant", json.dumps({"user": "root", "role": "root"}))
    record(gw, "/v3/auth/enable", "{}")
    record(gw, "/v3/kv/put", json.dumps({"key": b64("k"), "value": b64("v")}))
    record(gw, "/v3/auth/authenticate", json.dumps({"name": "root", "password": "wrong"}))
    token = json.loads(curl(gw, "/v3/auth/authenticate", json.dumps({"name": "root", "password": "rootpw"}))[1])
    gw.steps.append(f"authenticate: a token {bool(token.get('token'))}")
    root = token["token"]
    record(gw, "/v3/kv/put", json.dumps({"key": b64("k"), "value": b64("v")}), token=root)
    record(gw, "/v3/kv/range", json.dumps({"key": b64("k")}), token="not-a-token")
    record(gw, "/v3/auth/user/add", json.dumps({"name": "u", "password": "pw"}), token=root)
    record(gw, "/v3/auth/role/add", json.dumps({"name": "r"}), token=root)
    record(gw, "/v3/auth/role/grant", json.dumps({"name": "r", "perm": {"permType": "READ", "key": b64("k")}}),
           token=root)
    record(gw, "/v3/auth/user/grant", json.dumps({"user": "u", "role": "r"}), token=root)
    record(gw, "/v3/auth/role/get", json.dumps({"role": "r"}), token=root)
    record(gw, "/v3/auth/user/list", "{}", token=root)
    user = json.loads(curl(gw, "/v3/auth/authenticate", json.dumps({"name": "u", "password": "pw"}))[1])["token"]
    record(gw, "/v3/kv/range", json.dumps({"key": b64("k")}), token=user)
    record(gw, "/v3/kv/put", json.dumps({"key": b64("k"), "value": b64("w")}), token=user)
    record(gw, "/v3/auth/user/list", "{}", token=user)
    record(gw, "/v3/watch", json.dumps({"create_request": {"key": b64("other")}}), token=user, seconds=2)
    record(gw, "/v3/auth/disable", "{}", token=root)


def test_curl_auth(gateways):
    for gw in gateways:
        auth_walkthrough(gw)
    compare(*gateways)


def etcd3gw_session(gw: Gateway) -> list:
    from etcd3gw.client import Etcd3Client

    host, _, port = gw.url.removeprefix("http://").rpartition(":")
    c = Etcd3Client(host=host, port=int(port), timeout=10)
    out: list = [c.put("/app/a", "1"), c.put("/app/b", "2"), c.get("/app/a"),
                 sorted((v, m["key"]) for v, m in c.get_prefix("/app/")),
                 c.create("/app/a", "again"), c.create("/app/c", "3"),
                 c.replace("/app/a", "1", "one"), c.replace("/app/a", "1", "uno"), c.get("/app/a")]
    lease = c.lease(ttl=60)
    out += [lease.ttl() in range(55, 61), c.put("/app/leased", "x", lease=lease),
            list(lease.keys()), lease.refresh(), lease.revoke(), c.get("/app/leased")]
    events, cancel = c.watch_prefix("/app/", start_revision=1)
    seen = [next(events) for _ in range(6)]
    cancel()
    out.append([(e.get("type", "PUT"), e["kv"]["key"]) for e in seen])
    out += [c.delete("/app/b"), c.delete("/app/b"), c.delete_prefix("/app/"), c.get_all()]
    out.append(sorted(m["name"] for m in c.members()))
    return out


def test_etcd3gw(gateways):
    etcd, raftkv = (etcd3gw_session(gw) for gw in gateways)
    assert raftkv == etcd
