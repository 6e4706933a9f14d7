"""Fuzzing the gRPC API: requests generated from the protobuf descriptors, and raw bytes.

One real ``raftkv serve`` member for the whole module. For every unary method
of KV, Lease, Cluster, Maintenance, Lock and Election (MemberAdd excluded: it
really changes the membership; MemberRemove and MemberPromote never get the
member's own id), hypothesis builds requests field by field from the
descriptors: integers at their extremes, empty and huge bytes, unknown enum
values, nested and repeated messages to a bounded depth. Raw bytes (random,
or a valid request mutated) go to every method through a generic channel.

Every answer must be a success (that parses as the method's response) or a
status with a message: never gRPC's "Exception calling application" (an
unhandled exception), never INTERNAL but for an undecodable request, never a
hang. A refused request changes nothing: the keys' hash, the revision, the
compacted revision and the leases are the same before and after it. The
member's log never shows a traceback, and at the end the member still runs,
takes a put, reads it back and stops cleanly on SIGTERM.

The judging is bench/fuzz.py's (GrpcFuzzer), which ``python -m bench fuzz
--target grpc`` runs for as long as you like.
"""

from __future__ import annotations

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.fuzz import GROUPS, GrpcFuzzer, grpc_calls, member_id_of, raw_calls, start_grpc_member
from raftkv._proto.etcdserverpb import rpc_pb2

from fuzz_helpers import fuzz_settings, whole_log_problems  # tests/fuzz is on sys.path under pytest


@pytest.fixture(scope="module")
def member(module_clusters, tmp_path_factory):
    cluster = start_grpc_member(str(tmp_path_factory.mktemp("grpc-fuzz")))
    module_clusters.append(cluster)
    yield cluster
    process = cluster.members[0].process
    cluster.stop()
    assert process.returncode == 0, f"the member did not stop cleanly on SIGTERM (exit {process.returncode})"


@pytest.fixture(scope="module")
def fuzzer(member):
    endpoint = member.members[0].endpoint
    f = GrpcFuzzer(endpoint, member.members[0].log_path, [member_id_of(endpoint)])
    yield f
    f.close()


def _explain(call, problems) -> str:
    return f"{call!r}:\n  " + "\n  ".join(problems)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("group", GROUPS)
@fuzz_settings(120)
@given(data=st.data())
def test_generated_requests(fuzzer, group, data):
    call = data.draw(grpc_calls(group), label="call")
    problems = fuzzer.run(call)
    assert not problems, _explain(call, problems)


@pytest.mark.timeout(240)
@fuzz_settings(250)
@given(call=raw_calls())
def test_raw_bytes(fuzzer, call):
    problems = fuzzer.run(call)
    assert not problems, _explain(call, problems)


def _refused_writes(revision: int) -> st.SearchStrategy:
    """Writes the member must refuse, whatever else they hold."""
    key = st.binary(min_size=1, max_size=20)
    missing_lease = st.integers(1, 2**63 - 1)
    return st.one_of(
        st.builds(lambda k, v, lease: ("Put", rpc_pb2.PutRequest(key=k, value=v, lease=lease)),
                  key, st.binary(max_size=20), missing_lease),
        st.builds(lambda k: ("Put", rpc_pb2.PutRequest(key=k, ignore_value=True)),
                  key.map(lambda k: b"never-written/" + k)),
        st.builds(lambda k: ("Put", rpc_pb2.PutRequest(key=k, ignore_lease=True, lease=5)), key),
        st.builds(lambda k: ("Put", rpc_pb2.PutRequest(key=k, value=b"v" * (1536 * 1024 + 1))), key),
        st.builds(lambda k: ("Put", rpc_pb2.PutRequest(key=b"", value=k)), key),
        st.builds(lambda n: ("Txn", rpc_pb2.TxnRequest(success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"many/%d" % i)) for i in range(n)])),
            st.integers(129, 200)),
        # a valid put and then a refused one in the same txn: all or nothing
        st.builds(lambda k, lease: ("Txn", rpc_pb2.TxnRequest(success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"txn-ok/" + k, value=b"v")),
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"txn-bad/" + k, lease=lease))])),
            key, missing_lease),
        st.builds(lambda k: ("Txn", rpc_pb2.TxnRequest(success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=b"1")),
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=b"2"))])), key),
        st.builds(lambda r: ("Compact", rpc_pb2.CompactionRequest(revision=r)),
                  st.integers(revision + 1000, 2**63 - 1)),
        st.builds(lambda i: ("LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=i)), missing_lease),
        st.builds(lambda t: ("LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=t)), st.integers(9_000_000_001, 2**63 - 1)),
        st.just(("Put", rpc_pb2.PutRequest(key=b"x", prev_kv=True, lease=-1))),
    )


_PATHS = {"Put": "/etcdserverpb.KV/Put", "Txn": "/etcdserverpb.KV/Txn", "Compact": "/etcdserverpb.KV/Compact",
          "LeaseRevoke": "/etcdserverpb.Lease/LeaseRevoke", "LeaseGrant": "/etcdserverpb.Lease/LeaseGrant"}


@pytest.mark.timeout(120)
@fuzz_settings(20)
@given(data=st.data())
def test_refused_writes_change_nothing(fuzzer, data):
    """A batch of writes that must all be refused: each refused with a message, and the
    keys, revision, compaction and leases the same after the batch as before it."""
    fuzzer.revoke_all_leases()
    before = fuzzer.state()
    batch = data.draw(st.lists(_refused_writes(before[0][1]), min_size=1, max_size=10), label="batch")
    for name, request in batch:
        answer = fuzzer.invoke(_PATHS[name], request.SerializeToString(), 15.0)
        assert isinstance(answer, grpc.RpcError), f"{name} {request} was not refused"
        assert answer.details(), f"{name} refused without a message ({answer.code()})"
        assert answer.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), \
            f"{name}: {answer.code()} {answer.details()}"
    assert fuzzer.state() == before
    assert not fuzzer.log.problems()


def test_member_survived(member, fuzzer):
    """Last: the member runs, takes a put and reads it back; its whole log holds no traceback."""
    assert member.members[0].running
    assert not fuzzer.serves()
    assert not whole_log_problems(member)
    # and no servicer hit an unexpected exception (they log it as "request failed")
    with open(member.members[0].log_path, errors="replace") as f:
        assert "request failed" not in f.read()
