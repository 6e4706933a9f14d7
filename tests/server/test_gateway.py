"""The JSON gateway: its JSON as grpc-gateway writes it, bodies of several
requests, and streams that end when their HTTP client goes away (compared
with etcd in tests/interop/test_interop_gateway.py)."""

from __future__ import annotations

import http.client
import json
import re
import time

import pytest

from raftkv._proto.etcdserverpb import rpc_pb2
from raftkv.addresses import free_ports
from raftkv.cluster.local import LocalCluster
from raftkv.server.gateway import BadJSON, dumps, message_to_json, parse_requests


def test_json_as_grpc_gateway_writes_it():
    response = rpc_pb2.RangeResponse(count=3)
    response.header.revision = 2**63 - 1
    response.kvs.add(key=b"\x00<k>", value=b"", version=1)
    assert message_to_json(response) == {
        "header": {"revision": "9223372036854775807"}, "kvs": [{"key": "ADxrPg==", "version": "1"}], "count": "3"}
    event = rpc_pb2.WatchResponse(events=[{"type": 1}])
    assert message_to_json(event) == {"events": [{"type": "DELETE"}]}
    assert dumps({"error": "a <b> & c", "x": "é"}) == '{"error":"a \\u003cb\\u003e \\u0026 c","x":"é"}'.encode()


def test_a_body_holds_one_request_or_several():
    assert parse_requests(b"", rpc_pb2.RangeRequest) == [rpc_pb2.RangeRequest()]
    assert parse_requests(b' {"key": "YQ==", "limit": "5", "sort_order": "DESCEND", "other": 1} ',
                          rpc_pb2.RangeRequest) == [rpc_pb2.RangeRequest(key=b"a", limit=5, sort_order=2)]
    two = parse_requests(b'{"create_request": {"key": "YQ=="}}\n{"cancel_request": {"watch_id": "7"}}',
                         rpc_pb2.WatchRequest)
    assert [m.WhichOneof("request_union") for m in two] == ["create_request", "cancel_request"]


@pytest.mark.parametrize("body", [b"{", b"[]", b"5", b'{"key": 5}', b'{"limit": "x"}', b"\xff", b"[" * 50_000,
                                  b'{"key": "YQ=="} garbage'])
def test_what_is_not_a_request_is_refused(body):
    with pytest.raises(BadJSON):
        parse_requests(body, rpc_pb2.RangeRequest)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    (port,) = free_ports(1)
    cluster = LocalCluster(1, str(tmp_path_factory.mktemp("gateway")),
                           extra_args=["--listen-client-http-urls", f"http://127.0.0.1:{port}"])
    try:
        cluster.start()
        yield port
    finally:
        cluster.stop()


def watchers(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return int(float(re.search(r"^etcd_debugging_mvcc_watcher_total (\S+)$", text, re.MULTILINE).group(1)))


@pytest.mark.timeout(60)
def test_a_watch_ends_when_its_http_client_goes_away(gateway):
    before = watchers(gateway)
    conn = http.client.HTTPConnection("127.0.0.1", gateway, timeout=10)
    conn.request("POST", "/v3/watch", body=b'{"create_request": {"key": "YQ=="}}')
    response = conn.getresponse()
    created = json.loads(response.readline())
    assert created["result"]["created"] is True
    assert watchers(gateway) == before + 1
    conn.close()  # the client goes away with the watch still open
    deadline = time.monotonic() + 10
    while watchers(gateway) != before:
        assert time.monotonic() < deadline, "the gateway kept the watch of a client that went away"
        time.sleep(0.1)


@pytest.mark.timeout(60)
def test_a_stream_body_of_several_requests(gateway):
    conn = http.client.HTTPConnection("127.0.0.1", gateway, timeout=10)
    try:
        conn.request("POST", "/v3/watch", body=b'{"create_request": {"key": "YQ=="}}{"create_request": {"key": "Yg=="}}')
        response = conn.getresponse()
        first, second = (json.loads(response.readline())["result"] for _ in range(2))
    finally:
        conn.close()
    assert first["created"] and second["created"]
    assert second["watch_id"] != first.get("watch_id", "0")
