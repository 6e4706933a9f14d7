"""The peer handshake, spoken by hand to an in-process member: who is refused, and why.

Well-formed raftkv frames from someone who is not a member, from another
cluster, without the secret or with a wrong proof are refused and logged;
a member keeps working through all of it.
"""

from __future__ import annotations

import logging
import socket
import struct
import time

import pytest

from raftkv.client.node import Node
from raftkv.cluster.local import free_ports
from raftkv.raft import codec
from raftkv.raft.member import MemberConfig
from raftkv.raft.peer_auth import PeerSecurity, accept_proof, dial_proof, new_nonce, session_seals
from raftkv.raft.transport import query_members

SECRET = "s3cret"
FAST = dict(election_timeout_min=0.1, election_timeout_max=0.2, heartbeat_interval=0.02)


def frame(value: object) -> bytes:
    payload = codec.encode(value)
    return struct.pack(">I", len(payload)) + payload


def read_frame(sock: socket.socket) -> object | None:
    header = b""
    while len(header) < 4:
        chunk = sock.recv(4 - len(header))
        if not chunk:
            return None
        header += chunk
    (length,) = struct.unpack(">I", header)
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    return body


def closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the member closes the connection within ``timeout`` (whatever it sends meanwhile)."""
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                return True
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def hello(sender: str, *, cluster: int = 0, auth: str = "none", kind: str = "member", nonce: bytes = b"n" * 16):
    return {"raftkv": 1, "kind": kind, "from": sender, "cluster": cluster, "nonce": nonce, "auth": auth}


@pytest.fixture(params=[None, SECRET], ids=["no-secret", "secret"])
def member(request, tmp_path):
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    node = Node(address, [address], str(tmp_path / "m"), MemberConfig(secret=request.param, **FAST))
    deadline = time.monotonic() + 10
    while not node.member.is_leader:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield node, port, request.param
    node.close()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(5)
    return sock


def still_serves(node: Node) -> None:
    node.put("alive", "yes")
    assert node.get("alive").value == b"yes"


def test_a_non_member_is_refused(member, caplog):
    node, port, secret = member
    caplog.set_level(logging.WARNING, logger="raftkv.raft.transport")
    with connect(port) as sock:
        sock.sendall(frame(hello("127.0.0.1:9", auth="secret" if secret else "none")))
        answer = codec.decode(read_frame(sock))
        assert "not a member" in answer["error"]
        assert closed(sock)
        local = sock.getsockname()[1]
    assert any(f"peer=127.0.0.1:{local}" in r.getMessage() and "peer connection refused" in r.getMessage()
               for r in caplog.records)
    still_serves(node)


def test_another_cluster_is_refused(member):
    node, port, secret = member
    other = node.member.identity.cluster_id ^ 1
    with connect(port) as sock:
        sock.sendall(frame(hello(node.address, cluster=other, auth="secret" if secret else "none")))
        assert "cluster ID mismatch" in codec.decode(read_frame(sock))["error"]
        assert closed(sock)
    still_serves(node)


def test_the_secret_must_be_proved(member):
    node, port, secret = member
    if secret is None:  # a member without a secret refuses one that claims to have one
        with connect(port) as sock:
            sock.sendall(frame(hello(node.address, auth="secret")))
            assert "secret" in codec.decode(read_frame(sock))["error"]
        return
    with connect(port) as sock:  # claims to need no secret
        sock.sendall(frame(hello(node.address)))
        assert "secret" in codec.decode(read_frame(sock))["error"]
    with connect(port) as sock:  # a proof made with another secret
        h = codec.encode(hello(node.address, auth="secret"))
        sock.sendall(struct.pack(">I", len(h)) + h)
        accept = read_frame(sock)
        wrong = PeerSecurity.from_secret("guess").secret
        sock.sendall(frame({"proof": dial_proof(wrong, h, accept)}))
        assert closed(sock)
    still_serves(node)


def test_a_frame_over_the_limit_is_refused_at_its_length(member):
    node, port, _ = member
    with connect(port) as sock:
        sock.sendall(struct.pack(">I", 2**31 - 1) + b"x" * 1000)
        assert closed(sock)
    with connect(port) as sock:
        sock.sendall(struct.pack("<i", 100) + b"\x78\x9c" + b"\x00" * 20)  # pysyncobj's framing
        assert closed(sock)
    still_serves(node)


def test_a_query_is_answered_after_the_handshake(member):
    node, port, secret = member
    answer = query_members(f"127.0.0.1:{port}", PeerSecurity.from_secret(secret))
    assert answer.cluster_id == node.member.identity.cluster_id
    assert node.address in answer.members_json
    if secret:
        with pytest.raises(ConnectionError):
            query_members(f"127.0.0.1:{port}", PeerSecurity.from_secret("other"))


def test_established_frames_are_sealed(member):
    """With the secret, a frame the session key did not seal closes the connection."""
    node, port, secret = member
    if secret is None:
        pytest.skip("frames are sealed only with a peer secret")
    key = PeerSecurity.from_secret(secret).secret
    nonce = new_nonce()
    h = codec.encode(hello(node.address, auth="secret", nonce=nonce, kind="query"))
    with connect(port) as sock:
        sock.sendall(struct.pack(">I", len(h)) + h)
        accept_bytes = read_frame(sock)
        accept = codec.decode(accept_bytes)
        assert accept["proof"] == accept_proof(key, h, accept["nonce"])
        sock.sendall(frame({"proof": dial_proof(key, h, accept_bytes)}))
        _, seal_in = session_seals(key, nonce, accept["nonce"], dialing=True)
        answer = codec.decode(seal_in.open(read_frame(sock)))
        assert node.address in answer["members"]


def test_a_handshake_must_finish_in_time(member, caplog):
    node, port, _ = member
    caplog.set_level(logging.WARNING, logger="raftkv.raft.transport")
    with connect(port) as sock:
        sock.sendall(b"\x00\x00")  # half a length, then nothing
        assert closed(sock, timeout=15)
    assert any("handshake not finished" in r.getMessage() for r in caplog.records)
    still_serves(node)


def test_a_large_frame_right_after_the_proof_is_taken(tmp_path, caplog):
    """With a peer secret, the dialer's first messages follow its proof at
    once, often in the same TCP segment, and may be large (an append of a
    big value to a lagging member): they were held to the handshake's 64 KiB
    limit and the connection refused."""
    caplog.set_level(logging.WARNING, logger="raftkv.raft.transport")
    port, fake_port = free_ports(2)
    address, fake = f"127.0.0.1:{port}", f"127.0.0.1:{fake_port}"
    node = Node(address, [address, fake], str(tmp_path / "m"), MemberConfig(secret=SECRET, **FAST))
    try:
        key = PeerSecurity.from_secret(SECRET).secret
        nonce = new_nonce()
        h = codec.encode(hello(fake, auth="secret", nonce=nonce, cluster=node.member.identity.cluster_id))
        with connect(port) as sock:
            sock.sendall(struct.pack(">I", len(h)) + h)
            accept_bytes = read_frame(sock)
            accept = codec.decode(accept_bytes)
            seal_out, _ = session_seals(key, nonce, accept["nonce"], dialing=True)
            proof = codec.encode({"proof": dial_proof(key, h, accept_bytes)})
            big = seal_out.seal(codec.encode({"type": "rk_progress", "address": fake, "applied": 1,
                                              "padding": b"x" * 300_000}))
            sock.sendall(struct.pack(">I", len(proof)) + proof + struct.pack(">I", len(big)) + big)
            assert not closed(sock, timeout=1.5), "the member closed the connection"
        assert not any("peer connection refused" in r.getMessage() for r in caplog.records), \
            [r.getMessage() for r in caplog.records]
    finally:
        node.close()
