"""Drive a real etcd through pyetcd's raw gRPC stubs; JSON lines in, JSON lines out.

Run as a separate process (``python etcd_driver.py``): pyetcd's generated
protobuf modules define the same fully-qualified names (etcdserverpb.*) as
raftkv's own stubs, and one process's descriptor pool cannot hold both.  So
the pytest process never imports pyetcd; it talks to this driver instead.

Protocol: one JSON object per line on stdin, one JSON object per line on
stdout, in order.  Bytes are written as ``{"hex": "..."}`` wherever they occur
(requests and results alike).  Requests:

    {"op": "connect", "endpoint": "127.0.0.1:2379"}
    {"op": "range", "key": B, "range_end": B, "limit": 0, "revision": 0,
     "sort_order": "NONE", "sort_target": "KEY", "serializable": false,
     "keys_only": false, "count_only": false, "min_mod_revision": 0,
     "max_mod_revision": 0, "min_create_revision": 0, "max_create_revision": 0}
    {"op": "put", "key": B, "value": B, "lease": 0, "prev_kv": false,
     "ignore_value": false, "ignore_lease": false}
    {"op": "delete", "key": B, "range_end": B, "prev_kv": false}
    {"op": "txn", "compare": [{"key": B, "range_end": B, "target": "VERSION",
     "result": "EQUAL", "operand": 0 or B, ["operand_field": "value"|...|"none"]}],
     "success": [op...], "failure": [...]}
     (an op inside a txn may also be {"op": "empty"}: a RequestOp with nothing set)
    {"op": "compact", "revision": 5, "physical": true}
    {"op": "lease_grant", "id": 1, "ttl": 60}
    {"op": "lease_revoke", "id": 1}
    {"op": "lease_ttl", "id": 1}

Results (the normalized form the tests also build from raftkv's responses):

    {"type": "range", "revision": R, "kvs": [KV...], "more": b, "count": n}
    {"type": "put", "revision": R, "prev_kv": KV or null}
    {"type": "delete", "revision": R, "deleted": n, "prev_kvs": [KV...]}
    {"type": "txn", "revision": R, "succeeded": b, "responses": [result...]}
    {"type": "compact", "revision": R}
    {"type": "lease_grant", "revision": R, "id": i, "ttl": t}
    {"type": "lease_revoke", "revision": R}
    {"type": "lease_ttl", "id": i, "granted_ttl": t, "keys": [B...], "found": b}
    {"error": "<grpc status details>", "code": "<grpc status code name>"}

where KV is {"key", "create_revision", "mod_revision", "version", "value",
"lease"} and R is the response header's revision.
"""

from __future__ import annotations

import json
import sys
import traceback

import grpc
from pyetcd.etcdrpc import kv_pb2  # noqa: F401  (registers mvccpb)
from pyetcd.etcdrpc import rpc_pb2 as pb
from pyetcd.etcdrpc import rpc_pb2_grpc as pb_grpc

CALL_TIMEOUT = 20.0

_COMPARE_FIELD = {
    "VERSION": "version",
    "CREATE": "create_revision",
    "MOD": "mod_revision",
    "VALUE": "value",
    "LEASE": "lease",
}


def decode(obj):
    if isinstance(obj, dict):
        if set(obj) == {"hex"}:
            return bytes.fromhex(obj["hex"])
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


def encode(obj):
    if isinstance(obj, (bytes, bytearray)):
        return {"hex": bytes(obj).hex()}
    if isinstance(obj, dict):
        return {k: encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    return obj


# ---- requests -----------------------------------------------------------------


def range_request(r: dict) -> pb.RangeRequest:
    return pb.RangeRequest(
        key=r.get("key", b""),
        range_end=r.get("range_end", b""),
        limit=r.get("limit", 0),
        revision=r.get("revision", 0),
        sort_order=pb.RangeRequest.SortOrder.Value(r.get("sort_order", "NONE")),
        sort_target=pb.RangeRequest.SortTarget.Value(r.get("sort_target", "KEY")),
        serializable=r.get("serializable", False),
        keys_only=r.get("keys_only", False),
        count_only=r.get("count_only", False),
        min_mod_revision=r.get("min_mod_revision", 0),
        max_mod_revision=r.get("max_mod_revision", 0),
        min_create_revision=r.get("min_create_revision", 0),
        max_create_revision=r.get("max_create_revision", 0),
    )


def put_request(r: dict) -> pb.PutRequest:
    return pb.PutRequest(
        key=r.get("key", b""),
        value=r.get("value", b""),
        lease=r.get("lease", 0),
        prev_kv=r.get("prev_kv", False),
        ignore_value=r.get("ignore_value", False),
        ignore_lease=r.get("ignore_lease", False),
    )


def delete_request(r: dict) -> pb.DeleteRangeRequest:
    return pb.DeleteRangeRequest(
        key=r.get("key", b""), range_end=r.get("range_end", b""), prev_kv=r.get("prev_kv", False)
    )


def compare(c: dict) -> pb.Compare:
    target = c["target"]
    msg = pb.Compare(
        key=c.get("key", b""),
        range_end=c.get("range_end", b""),
        target=pb.Compare.CompareTarget.Value(target),
        result=pb.Compare.CompareResult.Value(c["result"]),
    )
    # The operand goes in the oneof member that matches the target, unless the request
    # names another ("operand_field": "version", "value", ..., or "none" for no member).
    field = c.get("operand_field") or _COMPARE_FIELD[target]
    if field != "none":
        setattr(msg, field, c.get("operand", b"" if field == "value" else 0))
    return msg


def request_op(r: dict) -> pb.RequestOp:
    op = r["op"]
    if op == "range":
        return pb.RequestOp(request_range=range_request(r))
    if op == "put":
        return pb.RequestOp(request_put=put_request(r))
    if op == "delete":
        return pb.RequestOp(request_delete_range=delete_request(r))
    if op == "txn":
        return pb.RequestOp(request_txn=txn_request(r))
    if op == "empty":
        return pb.RequestOp()
    raise ValueError(f"not a txn op: {op}")


def txn_request(r: dict) -> pb.TxnRequest:
    return pb.TxnRequest(
        compare=[compare(c) for c in r.get("compare", [])],
        success=[request_op(o) for o in r.get("success", [])],
        failure=[request_op(o) for o in r.get("failure", [])],
    )


# ---- responses ----------------------------------------------------------------


def kv(m) -> dict:
    return {
        "key": m.key,
        "create_revision": m.create_revision,
        "mod_revision": m.mod_revision,
        "version": m.version,
        "value": m.value,
        "lease": m.lease,
    }


def range_result(m) -> dict:
    return {
        "type": "range",
        "revision": m.header.revision,
        "kvs": [kv(x) for x in m.kvs],
        "more": m.more,
        "count": m.count,
    }


def put_result(m) -> dict:
    return {
        "type": "put",
        "revision": m.header.revision,
        "prev_kv": kv(m.prev_kv) if m.HasField("prev_kv") else None,
    }


def delete_result(m) -> dict:
    return {
        "type": "delete",
        "revision": m.header.revision,
        "deleted": m.deleted,
        "prev_kvs": [kv(x) for x in m.prev_kvs],
    }


def txn_result(m) -> dict:
    responses = []
    for r in m.responses:
        which = r.WhichOneof("response")
        if which == "response_range":
            responses.append(range_result(r.response_range))
        elif which == "response_put":
            responses.append(put_result(r.response_put))
        elif which == "response_delete_range":
            responses.append(delete_result(r.response_delete_range))
        elif which == "response_txn":
            responses.append(txn_result(r.response_txn))
        else:
            responses.append({"type": "empty"})
    return {
        "type": "txn",
        "revision": m.header.revision,
        "succeeded": m.succeeded,
        "responses": responses,
    }


class Driver:
    def __init__(self) -> None:
        self.channel = None
        self.kv = None
        self.lease = None

    def connect(self, endpoint: str) -> dict:
        self.close()
        self.channel = grpc.insecure_channel(
            endpoint,
            options=[
                ("grpc.max_receive_message_length", -1),
                ("grpc.max_send_message_length", -1),
            ],
        )
        grpc.channel_ready_future(self.channel).result(timeout=CALL_TIMEOUT)
        self.kv = pb_grpc.KVStub(self.channel)
        self.lease = pb_grpc.LeaseStub(self.channel)
        return {"ok": True}

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        self.channel = self.kv = self.lease = None

    def handle(self, r: dict) -> dict:
        op = r["op"]
        if op == "connect":
            return self.connect(r["endpoint"])
        if op == "close":
            self.close()
            return {"ok": True}
        t = CALL_TIMEOUT
        try:
            if op == "range":
                return range_result(self.kv.Range(range_request(r), timeout=t))
            if op == "put":
                return put_result(self.kv.Put(put_request(r), timeout=t))
            if op == "delete":
                return delete_result(self.kv.DeleteRange(delete_request(r), timeout=t))
            if op == "txn":
                return txn_result(self.kv.Txn(txn_request(r), timeout=t))
            if op == "compact":
                req = pb.CompactionRequest(revision=r["revision"], physical=r.get("physical", True))
                m = self.kv.Compact(req, timeout=t)
                return {"type": "compact", "revision": m.header.revision}
            if op == "lease_grant":
                m = self.lease.LeaseGrant(pb.LeaseGrantRequest(ID=r["id"], TTL=r["ttl"]), timeout=t)
                out = {"type": "lease_grant", "revision": m.header.revision, "id": m.ID,
                       "ttl": m.TTL}
                if m.error:
                    out["error_field"] = m.error
                return out
            if op == "lease_revoke":
                m = self.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=r["id"]), timeout=t)
                return {"type": "lease_revoke", "revision": m.header.revision}
            if op == "lease_ttl":
                m = self.lease.LeaseTimeToLive(
                    pb.LeaseTimeToLiveRequest(ID=r["id"], keys=True), timeout=t
                )
                return {
                    "type": "lease_ttl",
                    "id": m.ID,
                    "granted_ttl": m.grantedTTL,
                    "keys": sorted(m.keys),
                    "found": m.TTL != -1,
                }
        except grpc.RpcError as e:
            return {"error": e.details(), "code": e.code().name}
        raise ValueError(f"unknown op {op!r}")


def main() -> None:
    driver = Driver()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            out = driver.handle(decode(json.loads(line)))
        except Exception:  # a driver bug: report it, keep serving
            out = {"driver_exception": traceback.format_exc()}
        sys.stdout.write(json.dumps(encode(out)) + "\n")
        sys.stdout.flush()
    driver.close()


if __name__ == "__main__":
    main()
