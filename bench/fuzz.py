"""``python -m bench fuzz``: hostile input against real ``raftkv serve`` members, for a long time.

    python -m bench fuzz --minutes 30 --target all --seed 7 --out results/

Three surfaces, each with its own generators (hypothesis strategies; the CI
tests in tests/fuzz/ run the same ones for a few hundred examples):

- ``grpc``: every unary method of KV, Lease, Cluster, Maintenance, Lock and
  Election, with requests generated from the protobuf descriptors (integers
  at their extremes, empty and huge bytes, unknown enum values, nested and
  repeated messages to a bounded depth), and raw bytes (random, or a valid
  request mutated) through a generic channel. One member. Every answer must
  be a success or a status with a message (never INTERNAL from an unhandled
  exception, never a traceback), a refused request must change nothing.
- ``peer``: frames to every member's peer port of a 3-member cluster, with
  and without --peer-secret-file: random bytes, truncated frames, oversized
  length prefixes, handshakes with random fields and, without a secret,
  complete handshakes claiming a member's address followed by random but
  well-formed-looking Raft messages (an impostor).
- ``http``: the --listen-metrics-urls listener: random methods, paths,
  headers, bodies, malformed request lines, partial (slowloris) requests.

Always checked: no member process dies, no member log holds a traceback or a
CRITICAL line, the members keep serving writes, data acknowledged before
the fuzzing is unchanged, and the members agree (HashKV) afterwards.

The generators need hypothesis (the ``test`` extra). Each run prints one
JSON object per target: examples run, problems found (the first ones with
the example that caused them), and the members' health at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import socket
import string
import struct
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import click
import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

try:  # the generators are hypothesis strategies: the `test` extra has it
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st
except ImportError:  # so that `python -m bench` works without it; `fuzz` says what is missing
    st = None

from raftkv._proto.etcdserverpb import rpc_pb2
from raftkv._proto.v3electionpb import v3election_pb2
from raftkv._proto.v3lockpb import v3lock_pb2
from raftkv.cluster.local import LocalCluster, free_ports
from raftkv.raft import codec
from raftkv.raft.peer_auth import HANDSHAKE_FRAME_LIMIT, PROTOCOL_VERSION

MAX_REQUEST_BYTES = 1536 * 1024          # raftkv serve's default --max-request-bytes
GRPC_LIMIT = MAX_REQUEST_BYTES + 512 * 1024

# ---- member logs --------------------------------------------------------------------------------

# a traceback, or a line that says the member's state may be wrong
_BAD_LINE = re.compile(r"Traceback \(most recent call last\)| CRITICAL ")


class LogWatch:
    """Reads a member's log as it grows; ``problems()`` is what appeared since the last call."""

    def __init__(self, path: str, ignore: Callable[[str], bool] | None = None) -> None:
        self.path = path
        self.offset = 0
        self.ignore = ignore

    MAX_READ = 2 * 1024 * 1024   # more than this since the last look is itself a finding (a flood)
    MAX_SHOWN = 5

    def new_text(self) -> tuple[str, int]:
        """The whole lines written since the last call (at most MAX_READ bytes of them),
        and how many bytes were skipped beyond that."""
        try:
            size = os.path.getsize(self.path)
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(self.MAX_READ)
        except FileNotFoundError:
            return "", 0
        skipped = 0
        if self.offset + len(data) < size:
            skipped = size - self.offset - len(data)
            self.offset = size  # what is past the cap is not read: the flood is reported instead
        else:
            # only whole lines: a traceback being written is read next time
            data = data[:data.rfind(b"\n") + 1]
            self.offset += len(data)
        return data.decode("utf-8", "replace"), skipped

    def problems(self) -> list[str]:
        text, skipped = self.new_text()
        found = []
        if skipped:
            found.append(f"{os.path.basename(self.path)}: the log grew by {(len(text) + skipped) / 1e6:.1f} MB "
                         "since the last look (a flood)")
        lines = text.splitlines()
        more = 0
        for i, line in enumerate(lines):
            if not _BAD_LINE.search(line):
                continue
            block = lines[max(0, i - 1):i + 40]
            # the traceback ends at the next log line (one with a date)
            for j, later in enumerate(block[2:], start=2):
                if re.match(r"\d{4}-\d\d-\d\d ", later):
                    block = block[:j]
                    break
            snippet = "\n".join(block)
            if self.ignore is not None and self.ignore(snippet):
                continue
            if len(found) < self.MAX_SHOWN:
                found.append(f"{os.path.basename(self.path)}: {snippet}")
            else:
                more += 1
        if more:
            found.append(f"{os.path.basename(self.path)}: {more} more tracebacks or CRITICAL lines")
        return found


def read_log(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


# ---- values: integers at their extremes, bytes empty to huge ---------------------------------------

_SPECIAL_INTS = (0, 1, -1, 2, 3, 7, 100, 255, 256, 65535, 2**31 - 1, -2**31, 2**32 - 1, 2**32, 2**53,
                 2**62, 2**63 - 1, -2**63, 2**63, 2**64 - 1)


def ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    special = sorted({v for v in (*_SPECIAL_INTS, lo, hi, lo + 1, hi - 1) if lo <= v <= hi})
    return st.one_of(st.sampled_from(special), st.integers(max(lo, -20), min(hi, 200)), st.integers(lo, hi))


_INT_RANGES = {
    FieldDescriptor.TYPE_INT64: (-2**63, 2**63 - 1), FieldDescriptor.TYPE_SINT64: (-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-2**63, 2**63 - 1), FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1), FieldDescriptor.TYPE_INT32: (-2**31, 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-2**31, 2**31 - 1), FieldDescriptor.TYPE_SFIXED32: (-2**31, 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1), FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
}

_KEYS = [b"", b"\x00", b"\xff", b"\xff\xff", b"a", b"b", b"z", b"foo", b"fuzz/", b"fuzz/a", b"/", b"\x00\x00",
         b"a\x00", b"\x7f", b"n/", b"n"]
# rare sizes: around a page, past gRPC's defaults, around --max-request-bytes, past gRPC's limit
_HUGE = [4096, 64 * 1024, 1024 * 1024, MAX_REQUEST_BYTES - 1024, MAX_REQUEST_BYTES + 1, GRPC_LIMIT + 1]


def byte_strings(huge: bool = True) -> st.SearchStrategy[bytes]:
    normal = st.one_of(st.sampled_from(_KEYS), st.binary(max_size=40))
    if not huge:
        return normal
    big = st.sampled_from(_HUGE).map(lambda n: b"x" * n)
    # one value in fifty is big: enough to reach the limits, not enough to fill memory
    return st.integers(0, 49).flatmap(lambda n: big if n == 0 else normal)


def texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["", "http://127.0.0.1:1", "https://[::1]:2380", "http://a:b", "unix:///x", "\x00",
                         "127.0.0.1:2380", "x" * 300, "http://127.0.0.1:65536"]),
        st.text(max_size=30))


# ---- protobuf requests from their descriptors -------------------------------------------------------

MAX_DEPTH = 3            # a Txn inside a Txn inside a Txn, no deeper
MAX_REPEATED = 3


def _scalar(fd: FieldDescriptor) -> st.SearchStrategy:
    t = fd.type
    if t in _INT_RANGES:
        return ints(*_INT_RANGES[t])
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_BYTES:
        return byte_strings()
    if t == FieldDescriptor.TYPE_STRING:
        return texts()
    if t == FieldDescriptor.TYPE_ENUM:
        known = st.sampled_from([v.number for v in fd.enum_type.values])
        unknown = st.sampled_from([-1, len(fd.enum_type.values), 99, 2**31 - 1, -2**31])
        return st.one_of(known, known, known, unknown)  # one in four unknown
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if t == FieldDescriptor.TYPE_FLOAT else 64)
    raise TypeError(f"no strategy for {fd.full_name} (type {t})")


def _field(fd: FieldDescriptor, depth: int) -> st.SearchStrategy | None:
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        if depth >= MAX_DEPTH:
            return None
        single = message_strategy(fd.message_type, depth + 1)
    else:
        single = _scalar(fd)
    if not fd.is_repeated:
        return single
    few = st.lists(single, max_size=MAX_REPEATED)
    # now and then very many: etcd's limit of 128 operations in a txn
    many = single.map(lambda v: [v] * 130)
    return st.integers(0, 29).flatmap(lambda n: many if n == 0 else few)


def _build(cls, values: dict):
    msg = cls()
    for name, value in values.items():
        fd = msg.DESCRIPTOR.fields_by_name[name]
        if fd.is_repeated:
            container = getattr(msg, name)
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                for item in value:
                    container.add().CopyFrom(item)
            else:
                container.extend(value)
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(msg, name).CopyFrom(value)
        else:
            setattr(msg, name, value)
    return msg


_USUALLY_SET = {"key", "name"}
_MESSAGE_CACHE: dict[tuple[str, int], st.SearchStrategy] = {}


def message_strategy(desc: Descriptor, depth: int = 0) -> st.SearchStrategy:
    """Messages of type ``desc``: each field present or not, one field of each oneof at most."""
    key = (desc.full_name, depth)
    if key in _MESSAGE_CACHE:
        return _MESSAGE_CACHE[key]
    cls = message_factory.GetMessageClass(desc)
    plain, always = {}, {}
    for fd in desc.fields:
        if fd.containing_oneof is not None:
            continue
        strategy = _field(fd, depth)
        if strategy is not None:
            # a key or a name is nearly always given (it may still be empty): requests get past
            # the first check and on to the others
            (always if fd.name in _USUALLY_SET else plain)[fd.name] = strategy
    parts = [st.fixed_dictionaries(always, optional=plain)]
    for oneof in desc.oneofs:
        choices = [st.just({})]
        for fd in oneof.fields:
            strategy = _field(fd, depth)
            if strategy is not None:
                choices.append(strategy.map(lambda v, n=fd.name: {n: v}))
        parts.append(st.one_of(choices))
    strategy = st.tuples(*parts).map(lambda ps: _build(cls, {k: v for p in ps for k, v in p.items()}))
    _MESSAGE_CACHE[key] = strategy
    return strategy


# ---- the gRPC surface ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Method:
    path: str               # /etcdserverpb.KV/Range
    service: str            # KV
    name: str               # Range
    request: Descriptor
    response: Descriptor
    blocking: bool = False  # may wait for others (Lock, Campaign): a deadline is an answer

    def __repr__(self) -> str:
        return self.path


# membership changes: random input could really change the membership (MemberAdd), or does in a
# single-member cluster only with the member's own id, which the runner never sends
NOT_FUZZED = {"/etcdserverpb.Cluster/MemberAdd"}
# raw bytes could decode to any request of these: never sent raw
NOT_RAW = {"/etcdserverpb.Cluster/MemberAdd", "/etcdserverpb.Cluster/MemberRemove",
           "/etcdserverpb.Cluster/MemberPromote", "/etcdserverpb.Cluster/MemberUpdate"}
BLOCKING = {"/v3lockpb.Lock/Lock", "/v3electionpb.Election/Campaign"}
GROUPS = ("KV", "Lease", "Cluster", "Maintenance", "Lock", "Election")


def unary_methods() -> list[Method]:
    methods = []
    for module in (rpc_pb2, v3lock_pb2, v3election_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            if service.name not in GROUPS:
                continue
            for m in service.methods:
                path = f"/{service.full_name}/{m.name}"
                if m.client_streaming or m.server_streaming or path in NOT_FUZZED:
                    continue
                methods.append(Method(path, service.name, m.name, m.input_type, m.output_type,
                                      blocking=path in BLOCKING))
    return methods


METHODS = unary_methods()


@dataclass
class GrpcCall:
    method: Method
    request: object | None = None    # a message, or None when ``raw`` is sent
    raw: bytes | None = None

    def payload(self) -> bytes:
        return self.raw if self.raw is not None else self.request.SerializeToString()

    def __repr__(self) -> str:
        if self.raw is not None:
            shown = self.raw if len(self.raw) <= 200 else self.raw[:200] + b"...(%d bytes)" % len(self.raw)
            return f"GrpcCall({self.method.path}, raw={shown!r})"
        text = repr(_short(self.request))
        return f"GrpcCall({self.method.path}, {type(self.request).__name__}({text}))"


def _short(msg) -> dict:
    out = {}
    for fd, value in msg.ListFields():
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            value = [_short(v) for v in value] if fd.is_repeated else _short(value)
        elif isinstance(value, bytes) and len(value) > 60:
            value = value[:20] + b"...(%d bytes)" % len(value)
        elif isinstance(value, str) and len(value) > 60:
            value = value[:20] + "...(%d chars)" % len(value)
        elif fd.is_repeated:
            value = list(value)
        out[fd.name] = value
    return out


def grpc_calls(group: str) -> st.SearchStrategy[GrpcCall]:
    methods = [m for m in METHODS if m.service == group]
    return st.sampled_from(methods).flatmap(
        lambda m: message_strategy(m.request).map(lambda r: GrpcCall(m, request=r)))


def _mutate(data: bytes, rnd: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(5)
        if op == 0 and data:                       # flip a byte
            data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        elif op == 1 and data:                     # cut
            del data[rnd.randrange(len(data)):]
        elif op == 2:                              # insert random bytes
            at = rnd.randrange(len(data) + 1)
            data[at:at] = rnd.randbytes(rnd.randint(1, 8))
        elif op == 3 and data:                     # a length or varint byte set high
            data[rnd.randrange(len(data))] = rnd.choice([0x80, 0xff, 0x7f, 0x0f])
        else:                                      # duplicate a slice
            a = rnd.randrange(len(data) + 1)
            data += data[a:a + 16]
    return bytes(data)


def raw_calls() -> st.SearchStrategy[GrpcCall]:
    """Garbage as a request of any unary method: random bytes, or a valid request mutated."""
    methods = [m for m in METHODS if m.path not in NOT_RAW]
    auth = [Method(f"/etcdserverpb.Auth/{name}", "Auth", name, rpc_pb2.AuthEnableRequest.DESCRIPTOR,
                   rpc_pb2.AuthEnableResponse.DESCRIPTOR) for name in ("AuthEnable", "UserAdd")]
    method = st.sampled_from(methods + auth)
    random_bytes = st.tuples(method, st.binary(max_size=300)).map(lambda t: GrpcCall(t[0], raw=t[1]))
    mutated = method.flatmap(lambda m: st.tuples(message_strategy(m.request), st.randoms(use_true_random=False))
                             .map(lambda t: GrpcCall(m, raw=_mutate(t[0].SerializeToString(), t[1]))))
    return st.one_of(random_bytes, mutated)


def _identity(b: bytes) -> bytes:
    return b


# gRPC's own words for a handler that raised: never what raftkv should answer
_UNHANDLED = ("Exception calling application", "Exception iterating responses", "Exception deserializing",
              "Exception serializing", "Traceback", "raftkv: internal error")


class GrpcFuzzer:
    """Sends GrpcCalls to one member and judges the answers."""

    def __init__(self, endpoint: str, log_path: str, protected_member_ids: Iterable[int] = ()) -> None:
        self.endpoint = endpoint
        self.log = LogWatch(log_path)
        self.protected = set(protected_member_ids)
        self.channel = grpc.insecure_channel(endpoint, options=[
            ("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1)])
        self._calls: dict[str, Callable] = {}
        self.counts: Counter = Counter()

    def close(self) -> None:
        self.channel.close()

    def _callable(self, path: str):
        if path not in self._calls:
            self._calls[path] = self.channel.unary_unary(path, request_serializer=_identity,
                                                         response_deserializer=_identity)
        return self._calls[path]

    def invoke(self, path: str, payload: bytes, timeout: float):
        """The answer's bytes, or the grpc.RpcError."""
        try:
            return self._callable(path)(payload, timeout=timeout)
        except grpc.RpcError as e:
            return e

    # ---- the member's state, to see that a refusal changed nothing -----------------------------

    def _pb(self, path: str, request, response_cls, timeout: float = 10.0):
        answer = self.invoke(path, request.SerializeToString(), timeout)
        if isinstance(answer, grpc.RpcError):
            raise AssertionError(f"{path} failed: {answer.code()} {answer.details()}")
        return response_cls.FromString(answer)

    def state(self) -> tuple:
        """What a refused request must leave alone: the keys and their history, the leases."""
        h = self._pb("/etcdserverpb.Maintenance/HashKV", rpc_pb2.HashKVRequest(), rpc_pb2.HashKVResponse)
        leases = self._pb("/etcdserverpb.Lease/LeaseLeases", rpc_pb2.LeaseLeasesRequest(),
                          rpc_pb2.LeaseLeasesResponse)
        return (h.hash, h.header.revision, h.compact_revision), tuple(sorted(lease.ID for lease in leases.leases))

    def revoke_all_leases(self) -> None:
        """So that no lease of an earlier example expires (and deletes keys) during the next one."""
        leases = self._pb("/etcdserverpb.Lease/LeaseLeases", rpc_pb2.LeaseLeasesRequest(),
                          rpc_pb2.LeaseLeasesResponse)
        for lease in leases.leases:
            self.invoke("/etcdserverpb.Lease/LeaseRevoke",
                        rpc_pb2.LeaseRevokeRequest(ID=lease.ID).SerializeToString(), 10.0)

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until the state stops changing (a recipe the caller left still cleans up)."""
        deadline = time.monotonic() + timeout
        last = self.state()
        while time.monotonic() < deadline:
            time.sleep(0.6)
            now = self.state()
            if now == last:
                return
            last = now

    # ---- one call -----------------------------------------------------------------------------------

    def run(self, call: GrpcCall) -> list[str]:
        """Send ``call``; the problems with how the member answered (none: fine)."""
        method = call.method
        membership = method.path in ("/etcdserverpb.Cluster/MemberRemove", "/etcdserverpb.Cluster/MemberPromote")
        if membership and call.request is not None and call.request.ID in self.protected:
            call.request.ID ^= 1  # never the member itself
        self.revoke_all_leases()
        before = self.state()
        timeout = 1.5 if method.blocking else 15.0
        started = time.monotonic()
        answer = self.invoke(method.path, call.payload(), timeout)
        elapsed = time.monotonic() - started
        problems = []
        if isinstance(answer, grpc.RpcError):
            code, details = answer.code(), answer.details() or ""
            self.counts[f"{method.name}:{code.name}"] += 1
            if code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED) and method.blocking:
                self.settle()
            else:
                problems += judge_error(method, code, details, elapsed)
                if not problems and code != grpc.StatusCode.UNAVAILABLE:
                    after = self.state()
                    kv_before, leases_before = before
                    kv_after, leases_after = after
                    if kv_after != kv_before:
                        problems.append(f"refused ({code.name}: {details}) but the keys changed: "
                                        f"(hash, revision, compacted) {kv_before} -> {kv_after}")
                    # a Lock or Campaign without a lease is given a session lease first, as in
                    # etcd, which keeps it when the recipe fails (it expires on its own)
                    if leases_after != leases_before and method.service not in ("Lock", "Election"):
                        problems.append(f"refused ({code.name}: {details}) but the leases changed: "
                                        f"{leases_before} -> {leases_after}")
        else:
            self.counts[f"{method.name}:OK"] += 1
            try:
                message_factory.GetMessageClass(method.response).FromString(answer)
            except Exception as e:  # noqa: BLE001 - any failure to parse is the finding
                problems.append(f"an answer that does not parse as {method.response.name}: {e}")
        problems += self.log.problems()
        return problems

    def serves(self, key: bytes = b"fuzz-still-serving") -> list[str]:
        value = os.urandom(8).hex().encode()
        try:
            # a generated Alarm request may activate an alarm, which the member
            # accepts as etcd does (NOSPACE then refuses puts): clear them first
            raised = self._pb("/etcdserverpb.Maintenance/Alarm", rpc_pb2.AlarmRequest(), rpc_pb2.AlarmResponse)
            for alarm in raised.alarms:
                self._pb("/etcdserverpb.Maintenance/Alarm", rpc_pb2.AlarmRequest(
                    action=rpc_pb2.AlarmRequest.DEACTIVATE, memberID=alarm.memberID, alarm=alarm.alarm),
                    rpc_pb2.AlarmResponse)
            self._pb("/etcdserverpb.KV/Put", rpc_pb2.PutRequest(key=key, value=value), rpc_pb2.PutResponse)
            got = self._pb("/etcdserverpb.KV/Range", rpc_pb2.RangeRequest(key=key), rpc_pb2.RangeResponse)
        except AssertionError as e:
            return [f"the member no longer serves a put and a get: {e}"]
        if [kv.value for kv in got.kvs] != [value]:
            return [f"put {value!r}, read back {[kv.value for kv in got.kvs]!r}"]
        return []


def judge_error(method: Method, code: grpc.StatusCode, details: str, elapsed: float) -> list[str]:
    """Is this refusal a clear error, or a sign of a bug?"""
    problems = []
    if not details.strip():
        problems.append(f"{code.name} with an empty message")
    if any(marker in details for marker in _UNHANDLED):
        problems.append(f"an unhandled exception reached the caller: {code.name} {details[:500]!r}")
    elif code == grpc.StatusCode.INTERNAL and not details.startswith("grpc: error unmarshalling request"):
        problems.append(f"INTERNAL that is not an undecodable request: {details[:500]!r}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        problems.append(f"no answer within {elapsed:.1f}s (a request that never waits for others)")
    if code == grpc.StatusCode.UNAVAILABLE:
        problems.append(f"UNAVAILABLE: {details!r} (the member went away?)")
    return problems


# ---- the peer surface ---------------------------------------------------------------------------

def msgpack_values(max_leaves: int = 8) -> st.SearchStrategy:
    base = st.one_of(st.none(), st.booleans(), ints(-2**63, 2**64 - 1), st.floats(),
                     st.text(max_size=20), st.binary(max_size=32), st.just([]), st.just({}))
    return st.recursive(base, lambda kids: st.one_of(
        st.lists(kids, min_size=1, max_size=4), st.dictionaries(st.text(max_size=10), kids, min_size=1, max_size=4)),
        max_leaves=max_leaves)


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


@dataclass
class PeerSend:
    """Bytes for one connection to one member's peer port."""

    member: int
    data: list[bytes]          # sent in this order, as separate writes
    kind: str
    wait_reply: bool = False   # a complete handshake was sent: the member answers it

    def __repr__(self) -> str:
        shown = [d if len(d) <= 120 else d[:120] + b"...(%d bytes)" % len(d) for d in self.data]
        return f"PeerSend(member={self.member}, kind={self.kind}, data={shown!r})"


def hellos(addresses: list[str], cluster_ids: list[int]) -> st.SearchStrategy[dict]:
    """Handshakes whose every field is right, wrong, or of the wrong type; some fields missing."""
    other = (cluster_ids[0] ^ 1) if cluster_ids else 1
    fields = {
        "raftkv": st.one_of(st.just(PROTOCOL_VERSION), st.sampled_from([0, 2, -1, "1", 1.0, 2**64 - 1]),
                            msgpack_values(3)),
        "kind": st.one_of(st.sampled_from(["member", "learner", "query", "Member", "", "admin"]),
                          msgpack_values(3)),
        "from": st.one_of(st.sampled_from(addresses + ["127.0.0.1:1", "", "localhost:0", "[::1]:1",
                                                       addresses[0] + " "]), msgpack_values(3)),
        "cluster": st.one_of(st.sampled_from([0, *cluster_ids, other, -1, 2**64 - 1]), msgpack_values(3)),
        "nonce": st.one_of(st.binary(min_size=16, max_size=16), st.sampled_from([b"", b"x" * 5000]),
                           msgpack_values(3)),
        "auth": st.one_of(st.sampled_from(["none", "secret", "tls", ""]), msgpack_values(3)),
    }
    extras = st.dictionaries(st.text(max_size=8), msgpack_values(3), max_size=3)
    dropped = st.sets(st.sampled_from(sorted(fields)), max_size=3)
    return st.tuples(st.fixed_dictionaries(fields), extras, dropped).map(
        lambda t: {**t[1], **{k: v for k, v in t[0].items() if k not in t[2]}})


def peer_sends(members: int, addresses: list[str], cluster_ids: list[int]) -> st.SearchStrategy[PeerSend]:
    member = st.integers(0, members - 1)
    hello = hellos(addresses, cluster_ids)

    def encoded(value) -> bytes:
        try:
            return codec.encode(value)
        except (TypeError, ValueError, OverflowError):
            return codec.encode(repr(value))

    random_bytes = st.tuples(member, st.binary(min_size=1, max_size=600)).map(
        lambda t: PeerSend(t[0], [t[1]], "random bytes"))
    # a length that is not the payload's: larger (the member waits for the rest) or huge
    lengths = st.one_of(st.sampled_from([0, 1, HANDSHAKE_FRAME_LIMIT, HANDSHAKE_FRAME_LIMIT + 1, 2**31 - 1,
                                         2**31, 2**32 - 1, 64 * 1024 * 1024 + 1]),
                        st.integers(0, 2**32 - 1))
    oversized = st.tuples(member, lengths, st.binary(max_size=64)).map(
        lambda t: PeerSend(t[0], [struct.pack(">I", t[1]) + t[2]], "length prefix"))
    truncated = st.tuples(member, hello, st.integers(0, 200)).map(
        lambda t: PeerSend(t[0], [frame(encoded(t[1]))[:t[2]]], "truncated handshake"))
    handshake = st.tuples(member, hello, st.lists(msgpack_values(6), max_size=3), st.binary(max_size=40)).map(
        lambda t: PeerSend(t[0], [frame(encoded(t[1]))] + [frame(encoded(v)) for v in t[2]] + [t[3]],
                           "handshake", wait_reply=True))
    not_a_map = st.tuples(member, msgpack_values(6)).filter(lambda t: not isinstance(t[1], dict)).map(
        lambda t: PeerSend(t[0], [frame(encoded(t[1]))], "not a map", wait_reply=True))
    bad_msgpack = st.tuples(member, st.binary(min_size=1, max_size=100)).map(
        lambda t: PeerSend(t[0], [frame(t[1])], "undecodable frame", wait_reply=True))
    # pysyncobj's own framing (native length, zlib'd pickle): never understood
    pysyncobj = st.tuples(member, st.binary(max_size=60)).map(
        lambda t: PeerSend(t[0], [struct.pack("<i", len(t[1]) + 2) + b"\x78\x9c" + t[1]], "pysyncobj framing"))
    return st.one_of(random_bytes, oversized, truncated, handshake, not_a_map, bad_msgpack, pysyncobj)


# Raft messages as pysyncobj and raftkv send them, with random values. rk_removed is left
# out: without a peer secret an impostor's rk_removed stops a member by design (see
# tests/fuzz/test_fuzz_findings.py), and the fuzzing would end at the first one.
RAFT_TYPES = ["request_vote", "response_vote", "append_entries", "next_node_idx", "apply_command",
              "apply_command_response", "timeout_now", "rk_ping", "rk_pong", "rk_read", "rk_read_index",
              "rk_progress", "rk_transfer", "rk_keepalive", "rk_keepalive_result"]


def raft_messages(addresses: list[str]) -> st.SearchStrategy[dict]:
    term = ints(-2**63, 2**64 - 1)
    index = ints(-2**63, 2**64 - 1)
    command = st.one_of(st.binary(max_size=48),
                        st.tuples(st.sampled_from([b"\x00", b"\x01", b"\x02", b"\x03", b"\x10", b"\x11"]),
                                  st.binary(max_size=48)).map(lambda t: t[0] + t[1]))
    entry = st.tuples(command, index, term).map(list)
    chunk = st.one_of(st.none(), st.tuples(st.binary(max_size=64), st.booleans(), st.booleans()).map(list))
    shapes = {
        "request_vote": ({"term": term, "last_log_index": index, "last_log_term": term}, {}),
        "response_vote": ({"term": term}, {}),
        # an impostor's appends never commit (commit_index 0): entries it got a
        # follower to commit would diverge from the real leader's for good, the
        # exposure without a peer secret that the final checks cannot allow for
        "append_entries": ({"term": term, "commit_index": st.just(0)},
                           {"prevLogIdx": index, "prevLogTerm": term, "entries": st.lists(entry, max_size=4),
                            "serialized": chunk, "transmission": st.sampled_from(["start", "process", "finish"])}),
        "next_node_idx": ({"next_node_idx": index, "reset": st.booleans(), "success": st.booleans()}, {}),
        "apply_command": ({"command": command}, {"request_id": index}),
        "apply_command_response": ({"request_id": index}, {"error": ints(-5, 10), "log_idx": index,
                                                           "log_term": term}),
        "timeout_now": ({"term": term}, {}),
        "rk_ping": ({"term": term, "id": index}, {}),
        "rk_pong": ({"id": index, "ok": st.booleans()}, {}),
        "rk_read": ({"id": index}, {}),
        "rk_read_index": ({"id": index, "index": index}, {}),
        "rk_progress": ({"address": st.one_of(st.sampled_from(addresses), st.text(max_size=20)),
                         "applied": index}, {}),
        "rk_transfer": ({}, {}),
        "rk_keepalive": ({"lease": index, "id": index}, {}),
        "rk_keepalive_result": ({"id": index, "ttl": st.one_of(st.none(), index),
                                 "error": st.sampled_from([None, "LeaseNotFound", "LeaderChanged", "x"])}, {}),
    }
    shaped = st.one_of([
        st.fixed_dictionaries({"type": st.just(kind), **required}, optional=optional)
        for kind, (required, optional) in shapes.items()])

    def spoil(t):
        message, which, value = t
        keys = sorted(message)
        if which is None or not keys:
            return message
        message = dict(message)
        message[keys[which % len(keys)]] = value
        return message

    # mostly the right shape; sometimes one field of any type
    spoiled = st.tuples(shaped, st.one_of(st.none(), st.none(), st.integers(0, 10)), msgpack_values(3)).map(spoil)
    anything = st.dictionaries(st.text(max_size=12), msgpack_values(3), max_size=5).map(
        lambda d: {**d, "type": d.get("type", "nonsense")})
    return st.one_of(spoiled, anything)


@dataclass
class ImpostorSend:
    """A complete handshake to member ``member`` as member ``claim``, then Raft messages."""

    member: int
    claim: int
    messages: list[dict]

    def __repr__(self) -> str:
        return f"ImpostorSend(member={self.member}, claim={self.claim}, messages={self.messages!r})"


def impostor_sends(members: int, addresses: list[str]) -> st.SearchStrategy[ImpostorSend]:
    """The impostor claims a member its target dials (the one whose address sorts before the
    target's, transport.py _should_dial): the real member then does not dial again, and its new
    connection does not replace the impostor's before the impostor's messages are read."""
    pairs = [(t, c) for t in range(members) for c in range(members) if addresses[c] < addresses[t]]
    return st.tuples(st.sampled_from(pairs), st.lists(raft_messages(addresses), min_size=1, max_size=5)).map(
        lambda t: ImpostorSend(t[0][0], t[0][1], t[1]))


def _recv_frame(sock: socket.socket, limit: int = HANDSHAKE_FRAME_LIMIT) -> bytes | None:
    def exactly(n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    header = exactly(4)
    if header is None:
        return None
    (length,) = struct.unpack(">I", header)
    if length > limit:
        raise ValueError(f"a frame of {length} bytes")
    return exactly(length)


class PeerFuzzer:
    """Sends PeerSends and ImpostorSends to a running cluster's peer ports."""

    def __init__(self, cluster: LocalCluster, secret: bool) -> None:
        self.cluster = cluster
        self.secret = secret
        self.logs = [LogWatch(m.log_path) for m in cluster.members]
        self.counts: Counter = Counter()

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{m.peer_port}" for m in self.cluster.members]

    def _connect(self, member: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.cluster.members[member].peer_port), timeout=3)
        sock.settimeout(3)
        return sock

    def run(self, send: PeerSend) -> list[str]:
        self.counts[send.kind] += 1
        problems = []
        try:
            with self._connect(send.member) as sock:
                try:
                    for data in send.data:
                        sock.sendall(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # closed on us: a refusal
                if send.wait_reply:
                    problems += self._judge_reply(sock)
        except (ConnectionRefusedError, TimeoutError) as e:
            problems.append(f"cannot connect to m{send.member}'s peer port: {e}")
        return problems + self.check_quick()

    def _judge_reply(self, sock: socket.socket) -> list[str]:
        """After a complete handshake: an accept, a refusal with its reason, or a closed connection."""
        sock.settimeout(1.0)
        try:
            payload = _recv_frame(sock)
        except (TimeoutError, ConnectionResetError, OSError):
            return []
        except ValueError as e:
            return [f"the member answered a handshake with {e}"]
        if payload is None:
            return []
        try:
            answer = codec.decode(payload)
        except codec.DecodeError as e:
            return [f"an answer to a handshake that does not decode: {e}"]
        if not isinstance(answer, dict):
            return [f"an answer to a handshake that is not a map: {answer!r}"]
        if "error" in answer:
            self.counts["refused with a reason"] += 1
            if not (isinstance(answer["error"], str) and answer["error"].strip()):
                return [f"a refusal without a reason: {answer!r}"]
        else:
            self.counts["accepted"] += 1
        return []

    def impostor(self, send: ImpostorSend) -> list[str]:
        """A complete handshake as another member (no secret), then the messages."""
        self.counts["impostor"] += 1
        for message in send.messages:
            self.counts[f"impostor:{message.get('type')!s:.20}"] += 1
        hello = {"raftkv": PROTOCOL_VERSION, "kind": "member", "from": self.addresses[send.claim], "cluster": 0,
                 "nonce": os.urandom(16), "auth": "secret" if self.secret else "none"}
        problems = []
        try:
            with self._connect(send.member) as sock:
                sock.sendall(frame(codec.encode(hello)))
                accept = _recv_frame(sock)
                if accept is None:
                    return [f"m{send.member} closed a handshake claiming m{send.claim}'s address"]
                answer = codec.decode(accept)
                if "error" in answer:  # e.g. a member that stopped counting the claimed one
                    self.counts["impostor refused"] += 1
                    return self.check_quick()
                data = b"".join(frame(codec.encode(m)) for m in send.messages)
                if self.secret:
                    # the messages where the proof of the secret belongs: refused, closed at once
                    problems += self._refused_and_closed(sock, data, f"m{send.member}")
                    return problems + self.check_quick()
                try:
                    sock.sendall(data)
                    sock.settimeout(0.05)
                    while sock.recv(65536):  # what it answers, for a moment
                        pass
                except (TimeoutError, ConnectionResetError, BrokenPipeError):
                    pass
        except (ConnectionRefusedError, TimeoutError) as e:
            problems.append(f"cannot connect to m{send.member}'s peer port: {e}")
        return problems + self.check_quick()

    def _refused_and_closed(self, sock: socket.socket, data: bytes, name: str) -> list[str]:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return []
        sock.settimeout(3.0)
        try:
            reply = _recv_frame(sock, limit=2**32)
            if reply is not None:
                answer = codec.decode(reply)
                if not (isinstance(answer, dict) and isinstance(answer.get("error"), str) and answer["error"]):
                    return [f"{name} answered a handshake without the secret's proof with {answer!r}"]
                self.counts["impostor refused"] += 1
            while sock.recv(65536):
                pass
        except (ConnectionResetError, codec.DecodeError):
            pass
        except TimeoutError:
            return [f"{name} kept a connection open whose handshake had no proof of the secret"]
        return []

    def check_quick(self) -> list[str]:
        problems = []
        for member in self.cluster.members:
            if not member.running:
                problems.append(f"{member.name} exited with {member.process.returncode}")
        for watch in self.logs:
            problems += watch.problems()
        return problems


# ---- the cluster afterwards: serving, the data intact, the members in agreement ---------------------

def _unary(endpoint: str, path: str, request, response_cls, timeout: float = 5.0):
    with grpc.insecure_channel(endpoint) as channel:
        call = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=response_cls.FromString)
        return call(request, timeout=timeout)


def write_keys(cluster: LocalCluster, count: int, prefix: bytes = b"acked/") -> dict[bytes, bytes]:
    """Put ``count`` keys through the cluster; the ones acknowledged."""
    acked = {}
    for i in range(count):
        key, value = prefix + b"%04d" % i, os.urandom(6).hex().encode()
        endpoint = cluster.members[i % len(cluster.members)].endpoint
        request = rpc_pb2.PutRequest(key=key, value=value)
        _retry(lambda e=endpoint, r=request: _unary(e, "/etcdserverpb.KV/Put", r, rpc_pb2.PutResponse), timeout=30)
        acked[key] = value
    return acked


class _Behind(grpc.RpcError):
    """A member that has not reached a revision yet (retried like an unavailable one)."""


def _retry(fn: Callable, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def cluster_problems(cluster: LocalCluster, acked: dict[bytes, bytes], timeout: float = 30.0) -> list[str]:
    """After fuzzing: every member runs, takes a write, holds every acknowledged key, and the
    members agree on the hash of the keys at one revision."""
    problems = [f"{m.name} exited with {m.process.returncode}" for m in cluster.members if not m.running]
    if problems:
        return problems
    deadline = time.monotonic() + timeout
    revision = 0
    for i, member in enumerate(cluster.members):
        key = b"fuzz-after/%d" % i
        try:
            request = rpc_pb2.PutRequest(key=key, value=b"v")
            put = _retry(lambda m=member, r=request: _unary(m.endpoint, "/etcdserverpb.KV/Put", r,
                                                            rpc_pb2.PutResponse),
                         timeout=max(1.0, deadline - time.monotonic()))
            revision = max(revision, put.header.revision)
        except grpc.RpcError as e:
            problems.append(f"{member.name} takes no write: {e.code().name} {e.details()}")
    if problems:
        return problems
    prefix_end = b"acked0"  # the keys after "acked/"
    for member in cluster.members:
        try:
            request = rpc_pb2.RangeRequest(key=b"acked/", range_end=prefix_end)
            got = _retry(lambda m=member, r=request: _unary(m.endpoint, "/etcdserverpb.KV/Range", r,
                                                            rpc_pb2.RangeResponse),
                         timeout=max(1.0, deadline - time.monotonic()))
        except grpc.RpcError as e:
            problems.append(f"{member.name} cannot read the acknowledged keys: {e.code().name} {e.details()}")
            continue
        have = {kv.key: kv.value for kv in got.kvs}
        if have != acked:
            missing = sorted(set(acked) - set(have))[:5]
            changed = sorted(k for k in acked if k in have and have[k] != acked[k])[:5]
            extra = sorted(set(have) - set(acked))[:5]
            problems.append(f"{member.name}: acknowledged data changed (missing {missing}, changed {changed}, "
                            f"extra {extra})")
    # every member at or past ``revision``, then the hash at exactly that revision
    hashes = {}
    for member in cluster.members:
        seen: list[int] = []

        def at_revision(endpoint=member.endpoint, seen=seen):
            status = _unary(endpoint, "/etcdserverpb.Maintenance/Status", rpc_pb2.StatusRequest(),
                            rpc_pb2.StatusResponse)
            seen[:] = [status.header.revision]
            if status.header.revision < revision:
                raise _Behind()
            return _unary(endpoint, "/etcdserverpb.Maintenance/HashKV",
                          rpc_pb2.HashKVRequest(revision=revision), rpc_pb2.HashKVResponse)
        try:
            hashes[member.name] = _retry(at_revision, timeout=max(1.0, deadline - time.monotonic())).hash
        except _Behind:
            problems.append(f"{member.name} stays at revision {seen[0]}, behind revision {revision} "
                            "which another member acknowledged")
        except grpc.RpcError as e:
            problems.append(f"{member.name}: no HashKV at revision {revision}: {e.code().name} {e.details()}")
    if len(set(hashes.values())) > 1:
        problems.append(f"the members disagree: HashKV at revision {revision}: {hashes}")
    return problems


# ---- the HTTP surface ------------------------------------------------------------------------------

_TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"


@dataclass
class HttpSend:
    data: list[bytes]
    kind: str
    # a complete, well-formed request: it must get an answer with this status (None: any)
    expect: set[int] | None = None
    # requests sent together: one answer for each, in order, with these statuses
    expect_each: list[set[int]] | None = None

    def __repr__(self) -> str:
        shown = [d if len(d) <= 300 else d[:300] + b"...(%d bytes)" % len(d) for d in self.data]
        return f"HttpSend(kind={self.kind}, expect={self.expect}, data={shown!r})"


_PATHS = ["/health", "/metrics", "/", "*", "/health?x=1", "/metrics?name[]=x", "/metrics/", "/health/",
          "/HEALTH", "//health", "/%2e%2e/", "/%zz", "/health#x", "http://example.com/health",
          "/" + "a" * 5000, "/\u00e9", "//[", "//[::1]:x/health", "/health;x", "/?" + "&" * 500,
          "http://[/health", "http://[::1/metrics", "https://x:99999/health", "http://x@y/health"]
_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PRI", "get", "BREW"]
_VERSIONS = ["HTTP/1.1", "HTTP/1.0", "HTTP/0.9", "HTTP/2.0", "HTTP/1.1.1", "HTTP/9.9", "http/1.1", "HTTP/1.",
             "HTTP/-1.1", "HTTP/1.1 x", ""]


def _expected(method: str, path: str) -> set[int]:
    route = path.split("?", 1)[0].split("#", 1)[0]
    if "://" in route:
        # the absolute form: the route is its path; a target that is no URL at all gets a 400
        rest = route.partition("://")[2]
        route = "/" + rest.partition("/")[2]
        if "[" in rest.partition("/")[0]:
            return {400, 404}
    if route == "/health":
        return {200, 503} if method == "GET" else {405}
    if route == "/metrics":
        return {200}
    return {404}


def http_sends() -> st.SearchStrategy[HttpSend]:
    header_name = st.one_of(st.sampled_from(["Host", "Content-Length", "Transfer-Encoding", "Connection",
                                             "Expect", "Accept", "Content-Type", "X" * 300]),
                            st.text(alphabet=_TOKEN, min_size=1, max_size=20))
    header_value = st.one_of(st.sampled_from(["0", "-1", "10", "99999999999999999999", "chunked", "close",
                                              "keep-alive", "100-continue", "", "x" * 70000, "a\tb"]),
                             st.text(alphabet=string.printable.replace("\r", "").replace("\n", ""),
                                     max_size=40))
    headers = st.lists(st.tuples(header_name, header_value), max_size=6)
    body = st.binary(max_size=200)

    # well-formed: every answer is known in advance
    def well_formed(t):
        method, path, version, host, close = t
        lines = [f"{method} {path} {version}", f"Host: {host}"] + (["Connection: close"] if close else [])
        return HttpSend([("\r\n".join(lines) + "\r\n\r\n").encode()], "well-formed", _expected(method, path))
    good = st.tuples(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
                     st.sampled_from(["/health", "/metrics", "/", "/x", "/health?verbose=1", "/metrics?x=1",
                                      "/nothing/here", "//[", "//[::1", "/%zz", "http://[/health",
                                      "http://[::1/x"]),
                     st.sampled_from(["HTTP/1.1", "HTTP/1.0"]), st.sampled_from(["127.0.0.1", "x"]),
                     st.booleans()).map(well_formed)

    def assembled(t):
        method, path, version, hs, b, ending = t
        head = f"{method} {path} {version}".rstrip() + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs)
        return HttpSend([head.encode("utf-8", "surrogateescape") + ending + b], "random request")
    method = st.one_of(st.sampled_from(_METHODS), st.text(alphabet=_TOKEN, max_size=10))
    path = st.one_of(st.sampled_from(_PATHS), st.text(max_size=30).map(lambda s: "/" + s.replace(" ", "")))
    random_request = st.tuples(method, path, st.sampled_from(_VERSIONS), headers, body,
                               st.sampled_from([b"\r\n", b"\n", b"", b"\r\n\r\n"])).map(assembled)
    garbage = st.binary(min_size=1, max_size=400).map(lambda b: HttpSend([b], "garbage"))
    long_line = st.sampled_from([65537, 70000, 200000]).map(
        lambda n: HttpSend([b"GET /" + b"a" * n + b" HTTP/1.1\r\n\r\n"], "long request line"))
    many_headers = st.integers(90, 200).map(
        lambda n: HttpSend([b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(n)) + b"\r\n"],
                           "many headers"))
    # two requests in one write, the first with a body it declares (and the server ignores)
    pipelined = st.tuples(body, st.sampled_from(["/health", "/metrics", "/x"])).map(lambda t: HttpSend(
        [b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(t[0]) + t[0]
         + f"GET {t[1]} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()], "pipelined",
        expect_each=[{200}, _expected("GET", t[1])]))
    # a request dribbled in pieces
    dribbled = st.tuples(random_request, st.lists(st.integers(1, 50), min_size=1, max_size=6)).map(
        lambda t: HttpSend(_split(t[0].data[0], t[1]), "dribbled"))
    return st.one_of(good, random_request, garbage, long_line, many_headers, pipelined, dribbled)


# a request line Python's server parses as HTTP/1.x
_REQUEST_LINE = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [^ ]+ HTTP/1\.[01]\r?$")


def _split(data: bytes, sizes: list[int]) -> list[bytes]:
    parts, at = [], 0
    for size in sizes:
        if at >= len(data):
            break
        parts.append(data[at:at + size])
        at += size
    if at < len(data):
        parts.append(data[at:])
    return parts


def _http_benign(snippet: str) -> bool:
    """A traceback the HTTP listener logs at DEBUG for a client that went away: not a finding."""
    return bool(re.search(r"(BrokenPipeError|ConnectionResetError|ConnectionAbortedError|TimeoutError)", snippet))


class HttpFuzzer:
    def __init__(self, host: str, port: int, log_path: str) -> None:
        self.host, self.port = host, port
        self.log = LogWatch(log_path, ignore=_http_benign)
        self.counts: Counter = Counter()

    def exchange(self, data: list[bytes], timeout: float = 5.0) -> bytes:
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            try:
                for part in data:
                    sock.sendall(part)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # closed on us (a refusal): read what it said
            answer = b""
            deadline = time.monotonic() + timeout
            try:
                while time.monotonic() < deadline:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
            except (TimeoutError, ConnectionResetError):
                pass
            return answer

    def run(self, send: HttpSend) -> list[str]:
        self.counts[send.kind] += 1
        problems = []
        try:
            answer = self.exchange(send.data)
        except OSError as e:
            return [f"cannot reach the HTTP listener: {e}"]
        statuses = [int(m.group(1)) for m in re.finditer(rb"HTTP/1\.[01] (\d{3}) ", answer)]
        first_line = b"".join(send.data).split(b"\n", 1)[0]
        if answer and not answer.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")):
            if _REQUEST_LINE.match(first_line):
                problems.append(f"an answer that is not HTTP: {answer[:200]!r}")
            else:
                # Python's server answers a request line it cannot parse (or an HTTP/0.9 one)
                # the HTTP/0.9 way: the page alone, with no status line (Go says "HTTP/1.1 400")
                self.counts["answer without a status line"] += 1
        for status in statuses:
            self.counts[f"status {status}"] += 1
            # 501: a method Python's server does not know; 503: /health unhealthy; 505: a version
            if status >= 500 and status not in (501, 503, 505):
                problems.append(f"answered {status}: {answer[:300]!r}")
        if send.expect_each is not None and (len(statuses) != len(send.expect_each) or any(
                got not in want for got, want in zip(statuses, send.expect_each))):
            problems.append(f"{len(send.expect_each)} requests answered with {statuses}, expected "
                            f"{[sorted(w) for w in send.expect_each]}: {answer[:300]!r}")
        if send.expect is not None:
            if not statuses:
                problems.append(f"no answer to a well-formed request (expected {sorted(send.expect)}); "
                                f"got {answer[:200]!r}")
            elif statuses[0] not in send.expect:
                problems.append(f"answered {statuses[0]}, expected {sorted(send.expect)}: {answer[:200]!r}")
        return problems + self.log.problems()

    def health(self) -> list[str]:
        problems = []
        for path, want in (("/health", b'{"health":"true"}'), ("/metrics", b"etcd_server_has_leader")):
            try:
                answer = self.exchange([f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()])
            except OSError as e:
                problems.append(f"GET {path}: {e}")
                continue
            if not answer.startswith(b"HTTP/1.1 200 ") or want not in answer:
                problems.append(f"GET {path} answered {answer[:200]!r}")
        return problems


class Slowloris:
    """``count`` connections that each sent part of a request and then nothing."""

    PARTS = (b"GET /health HTTP/1.1\r\nHost: x\r\n", b"GET /metr", b"G",
             b"POST /metrics HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc",
             b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 1000)

    def __init__(self, host: str, port: int, count: int) -> None:
        self.socks = []
        for i in range(count):
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(self.PARTS[i % len(self.PARTS)])
            self.socks.append(sock)

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.socks = []

    def __enter__(self) -> Slowloris:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DebugLogCluster(LocalCluster):
    """A LocalCluster whose members log at DEBUG: the HTTP listener logs a request that
    failed with an exception only at that level."""

    def command(self, member):
        command = super().command(member)
        at = command.index("--log-level")
        command[at + 1] = "DEBUG"
        return command


# ---- clusters for the fuzzers ---------------------------------------------------------------------

def start_grpc_member(base_dir: str) -> LocalCluster:
    cluster = LocalCluster(1, base_dir)
    cluster.start()
    return cluster


def member_id_of(endpoint: str) -> int:
    return _unary(endpoint, "/etcdserverpb.Maintenance/Status", rpc_pb2.StatusRequest(),
                  rpc_pb2.StatusResponse).header.member_id


def start_peer_cluster(base_dir: str, secret: bool) -> LocalCluster:
    extra = []
    if secret:
        path = os.path.join(base_dir, "peer-secret")
        os.makedirs(base_dir, exist_ok=True)
        with open(path, "w") as f:
            f.write(os.urandom(16).hex())
        extra = ["--peer-secret-file", path]
    cluster = LocalCluster(3, base_dir, extra_args=extra)
    cluster.start()
    cluster.leader_index()
    return cluster


def cluster_ids(cluster: LocalCluster) -> list[int]:
    return sorted({member_cluster_id(m.endpoint) for m in cluster.members})


def member_cluster_id(endpoint: str) -> int:
    return _unary(endpoint, "/etcdserverpb.Maintenance/Status", rpc_pb2.StatusRequest(),
                  rpc_pb2.StatusResponse).header.cluster_id


def start_http_member(base_dir: str) -> tuple[LocalCluster, int]:
    (port,) = free_ports(1)
    cluster = DebugLogCluster(1, base_dir, extra_args=["--listen-metrics-urls", f"http://127.0.0.1:{port}"])
    cluster.start()
    return cluster, port


# ---- the long run ---------------------------------------------------------------------------------

@dataclass
class Report:
    target: str
    examples: int = 0
    problems: list[dict] = field(default_factory=list)
    problem_count: int = 0
    counts: dict = field(default_factory=dict)
    health: list[str] = field(default_factory=list)
    seconds: float = 0.0          # all of it: starting the members, fuzzing, checking, stopping
    fuzz_seconds: float = 0.0     # fuzzing only
    logs: list[str] = field(default_factory=list)
    stopped_early: str | None = None

    signatures: Counter = field(default_factory=Counter)

    def record(self, example: object, problems: list[str], keep: int = 20) -> None:
        """Counts every problem by its signature; keeps the first example of each (``keep`` at most)."""
        self.problem_count += 1
        for problem in problems:
            signature = problem_signature(problem)
            if signature not in self.signatures and len(self.problems) < keep:
                self.problems.append({"signature": signature, "example": repr(example)[:2000],
                                      "problem": problem[:4000]})
            self.signatures[signature] += 1

    @property
    def ok(self) -> bool:
        return not self.problem_count and not self.health and not self.stopped_early


def problem_signature(problem: str) -> str:
    """What kind of problem: a traceback's exception, else the first line without its numbers."""
    lines = [line for line in problem.splitlines() if line.strip()]
    if not lines:
        return "?"
    if "Traceback (most recent call last)" in problem:
        return f"{problem.split(':', 1)[0]}: {lines[-1].strip()}"[:200]
    first = lines[0].split(": b'", 1)[0].split(': b"', 1)[0]
    return re.sub(r"\d+", "N", first)[:200]


def drive(strategy: st.SearchStrategy, run_one: Callable[[object], list[str]], seconds: float, base_seed: int,
          report: Report, alive: Callable[[], bool], chunk: int = 100) -> None:
    """Examples from ``strategy`` into ``run_one`` until ``seconds`` have passed. Problems are
    recorded, not raised: hypothesis goes on generating (no shrinking, the member is stateful)."""
    started = time.monotonic()
    deadline = started + seconds
    round_ = 0
    while time.monotonic() < deadline and not report.stopped_early:
        round_ += 1

        @seed(base_seed * 100_003 + round_)
        @settings(max_examples=chunk, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def batch(example):
            if time.monotonic() > deadline or report.stopped_early:
                return
            report.examples += 1
            problems = run_one(example)
            if problems:
                report.record(example, problems)
            if not alive():
                report.stopped_early = f"a member stopped after {report.examples} examples"

        batch()
    report.fuzz_seconds = round(time.monotonic() - started, 1)


def _alive(cluster: LocalCluster) -> Callable[[], bool]:
    return lambda: all(m.running for m in cluster.members)


def fuzz_grpc(seconds: float, base_seed: int, work: str) -> Report:
    report = Report("grpc")
    started = time.monotonic()
    cluster = start_grpc_member(os.path.join(work, "grpc"))
    report.logs = [m.log_path for m in cluster.members]
    try:
        endpoint = cluster.members[0].endpoint
        fuzzer = GrpcFuzzer(endpoint, cluster.members[0].log_path, [member_id_of(endpoint)])
        strategy = st.one_of(*[grpc_calls(g) for g in GROUPS], raw_calls())
        drive(strategy, fuzzer.run, seconds, base_seed, report, _alive(cluster))
        report.counts = dict(fuzzer.counts.most_common())
        report.health = ([] if cluster.members[0].running else ["the member exited"]) or fuzzer.serves()
        report.health += fuzzer.log.problems()
        fuzzer.close()
    finally:
        cluster.stop()
    report.seconds = round(time.monotonic() - started, 1)
    return report


def fuzz_peer(seconds: float, base_seed: int, work: str, secret: bool) -> Report:
    report = Report("peer-secret" if secret else "peer-no-secret")
    started = time.monotonic()
    cluster = start_peer_cluster(os.path.join(work, report.target), secret)
    report.logs = [m.log_path for m in cluster.members]
    try:
        acked = write_keys(cluster, 30)
        fuzzer = PeerFuzzer(cluster, secret)
        ids = cluster_ids(cluster)
        frames = peer_sends(len(cluster.members), fuzzer.addresses, ids)
        strategy = frames if secret else st.one_of(frames, impostor_sends(len(cluster.members), fuzzer.addresses))
        def run_one(example) -> list[str]:
            return fuzzer.impostor(example) if isinstance(example, ImpostorSend) else fuzzer.run(example)
        drive(strategy, run_one, seconds, base_seed, report, _alive(cluster))
        report.counts = dict(fuzzer.counts.most_common())
        report.health = cluster_problems(cluster, acked) + fuzzer.check_quick()
    finally:
        cluster.stop()
    report.seconds = round(time.monotonic() - started, 1)
    return report


def fuzz_http(seconds: float, base_seed: int, work: str) -> Report:
    report = Report("http")
    started = time.monotonic()
    cluster, port = start_http_member(os.path.join(work, "http"))
    report.logs = [m.log_path for m in cluster.members]
    try:
        fuzzer = HttpFuzzer("127.0.0.1", port, cluster.members[0].log_path)
        n = 0

        def run_one(send):
            nonlocal n
            n += 1
            problems = fuzzer.run(send)
            if n % 50 == 0:  # now and then: answers /health and /metrics while held up by slow clients
                with Slowloris("127.0.0.1", port, 20):
                    problems += fuzzer.health()
            return problems

        drive(http_sends(), run_one, seconds, base_seed, report, _alive(cluster))
        report.counts = dict(fuzzer.counts.most_common())
        report.health = ([] if cluster.members[0].running else ["the member exited"]) or fuzzer.health()
        report.health += fuzzer.log.problems()
    finally:
        cluster.stop()
    report.seconds = round(time.monotonic() - started, 1)
    return report


TARGETS = ("grpc", "peer", "http", "all")


@click.command("fuzz")
@click.option("--minutes", type=float, default=10.0, show_default=True,
              help="How long to fuzz, shared among the targets.")
@click.option("--target", type=click.Choice(TARGETS), default="all", show_default=True)
@click.option("--seed", "base_seed", type=int, default=None, help="Seed of the generators [random].")
@click.option("--out", default=None, help="Folder for fuzz-<target>.json and the logs of members with problems.")
@click.option("--keep", is_flag=True, help="Keep the members' data directories and logs, even without problems.")
def fuzz(minutes: float, target: str, base_seed: int | None, out: str | None, keep: bool) -> None:
    """Hostile gRPC requests, peer frames and HTTP requests against real members, for a long time.

    The same generators as tests/fuzz (hypothesis, which the `test` extra installs),
    without shrinking: every problem is recorded with the example that showed it, and the
    run goes on. Prints one JSON object per target; exits 1 if any found a problem.

    Example: python -m bench fuzz --minutes 60 --target peer --seed 3
    """
    if st is None:
        raise click.ClickException("python -m bench fuzz needs hypothesis: pip install -e '.[test]'")
    if base_seed is None:
        base_seed = random.randrange(1, 2**31)
    runs: list[tuple[str, Callable[[float, str], Report]]] = []
    if target in ("grpc", "all"):
        runs.append(("grpc", lambda s, w: fuzz_grpc(s, base_seed, w)))
    if target in ("peer", "all"):
        runs.append(("peer-no-secret", lambda s, w: fuzz_peer(s, base_seed, w, secret=False)))
        runs.append(("peer-secret", lambda s, w: fuzz_peer(s, base_seed, w, secret=True)))
    if target in ("http", "all"):
        runs.append(("http", lambda s, w: fuzz_http(s, base_seed, w)))
    share = minutes * 60 / len(runs)
    work = tempfile.mkdtemp(prefix="raftkv-fuzz-")
    click.echo(f"fuzzing {', '.join(name for name, _ in runs)} for {minutes:g} minutes, seed {base_seed}, "
               f"members under {work}", err=True)
    failed = False
    for name, run in runs:
        report = run(share, work)
        failed |= not report.ok
        result = {"target": report.target, "seed": base_seed, "seconds": report.seconds,
                  "fuzz_seconds": report.fuzz_seconds, "examples": report.examples,
                  "examples_per_s": round(report.examples / max(report.fuzz_seconds, 1e-9), 1),
                  "problem_count": report.problem_count, "ok": report.ok, "stopped_early": report.stopped_early,
                  "health": report.health, "signatures": dict(report.signatures.most_common()),
                  "problems": report.problems, "counts": report.counts,
                  "logs": report.logs}
        if out:
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, f"fuzz-{name}.json"), "w") as f:
                json.dump(result, f, indent=1)
            if not report.ok:
                for path in report.logs:
                    with contextlib.suppress(OSError):
                        shutil.copy(path, os.path.join(out, f"fuzz-{name}-{os.path.basename(path)}"))
        click.echo(json.dumps(result))
    if failed or keep:
        click.echo(f"members' data and logs kept under {work}", err=True)
    else:
        shutil.rmtree(work, ignore_errors=True)
    raise SystemExit(1 if failed else 0)


# the same generators, for the tests (tests/fuzz)
__all__ = ["GROUPS", "METHODS", "GrpcFuzzer", "HttpFuzzer", "PeerFuzzer", "Slowloris", "cluster_problems", "fuzz",
           "grpc_calls", "http_sends", "impostor_sends", "peer_sends", "raw_calls", "write_keys"]
