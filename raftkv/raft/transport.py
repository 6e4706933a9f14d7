"""The peer transport: pysyncobj's Transport, on raftkv's own connections.

pysyncobj's TCP transport unpickles whatever a socket sends. This one, plugged
in through pysyncobj's transport class hook, never does:

- frames are a 4-byte big-endian length and a codec value (``codec``): plain
  data only; a frame over the limit is refused as soon as its length is read;
- a connection first passes the handshake (``peer_auth``): the right cluster,
  a known member, the peer secret or TLS certificate; until then it may send
  only small frames and has a few seconds to finish;
- a connection that breaks a rule is closed and logged once, with the address
  it came from; nothing else changes;
- the listener binds exactly the address it is given.

Messages from established connections reach pysyncobj as dicts and lists;
the member checks their shape before acting on them.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from pysyncobj.node import Node, TCPNode
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.transport import Transport

from raftkv.raft import codec
from raftkv.raft.peer_auth import (
    HANDSHAKE_FRAME_LIMIT,
    PROTOCOL_VERSION,
    FrameSeal,
    HandshakeRefused,
    PeerSecurity,
    accept_proof,
    certificate_cn,
    dial_proof,
    new_nonce,
    proofs_match,
    session_seals,
)

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
_READ_CHUNK = 256 * 1024
_RETRYABLE = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINPROGRESS, errno.EINTR)
MAX_RETRY_DELAY = 3.0  # seconds between attempts to reach a peer that refuses or is gone


@dataclass
class PeerSettings:
    """What the transport needs from its member (set on it before pysyncobj starts)."""

    address: str                                  # this member's peer address
    security: PeerSecurity
    cluster_id: Callable[[], int]                 # 0 while unknown
    learn_cluster_id: Callable[[int], None]
    is_learner: Callable[[str], bool]             # may this address connect as a learner
    members_answer: Callable[[], str]             # the answer to a "query" connection
    max_frame: int = 64 * 1024 * 1024
    handshake_timeout: float = 5.0
    max_pending_connections: int = 128
    max_send_buffer: int = 128 * 1024 * 1024
    bind_address: str | None = None               # host:port to listen on; None: the member's address
    refusals: RefusalLog = field(default_factory=lambda: RefusalLog())


class RefusalLog:
    """One warning per refused connection, with a cap per second so a flood
    of connections cannot flood the log (the rest are counted)."""

    def __init__(self, per_second: int = 50) -> None:
        self._per_second = per_second
        self._window = 0
        self._logged = 0
        self._suppressed = 0

    def refused(self, peer: str, reason: str) -> None:
        now = int(time.monotonic())
        if now != self._window:
            if self._suppressed:
                log.warning("peer connections refused without a log line count=%d", self._suppressed)
            self._window, self._logged, self._suppressed = now, 0, 0
        if self._logged < self._per_second:
            self._logged += 1
            log.warning("peer connection refused peer=%s reason=%s", peer, reason)
        else:
            self._suppressed += 1


class _Closed(Exception):
    """Ends a connection; the message says why (logged when the peer broke a rule)."""

    def __init__(self, reason: str, refused: bool = True) -> None:
        super().__init__(reason)
        self.refused = refused


class PeerConnection:
    """One TCP connection (optionally TLS) carrying frames, driven by pysyncobj's poller."""

    def __init__(self, transport: PeerTransport, sock: socket.socket, outgoing: bool,
                 target: TCPNode | None = None) -> None:
        self.transport = transport
        self.sock = sock
        self.fileno = sock.fileno()
        self.outgoing = outgoing
        self.target = target          # the node dialed (outgoing)
        self.node: Node | None = None  # the node it carries once established
        self.kind = ""
        self.peer = "?"
        self.established = False
        self.closed = False
        self.connecting = outgoing
        self.started = time.monotonic()
        self._in = bytearray()
        self._out = bytearray()
        self._tls: ssl.SSLObject | None = None
        self._tls_in: ssl.MemoryBIO | None = None
        self._tls_out: ssl.MemoryBIO | None = None
        self._tls_ready = True
        self._seal_out: FrameSeal | None = None
        self._seal_in: FrameSeal | None = None
        self._hello = b""
        self._accept = b""
        self._nonce = b""
        self._awaiting = "accept" if outgoing else "hello"
        self._sender = ""
        self._their_cluster = 0
        self._their_nonce = b""
        self._close_after_flush = False
        self._subscribe()
        if not outgoing:
            self.peer = _address_text(sock.getpeername())
            self._start_tls_or_hello()

    # ---- poller plumbing ----------------------------------------------------

    def _subscribe(self) -> None:
        events = POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR
        if self._out or self.connecting:
            events |= POLL_EVENT_TYPE.WRITE
        self.transport.poller.subscribe(self.fileno, self._on_event, events)

    def _on_event(self, descr: int, events: int) -> None:
        if self.closed or descr != self.fileno:
            return
        try:
            if events & POLL_EVENT_TYPE.ERROR and not events & POLL_EVENT_TYPE.READ:
                raise _Closed("connection error", refused=False)
            if self.connecting:
                if self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    raise _Closed("connect failed", refused=False)
                self.connecting = False
                self.peer = _address_text(self.sock.getpeername())
                self._start_tls_or_hello()
            if events & POLL_EVENT_TYPE.READ:
                self._read()
            if self._out:
                self._flush()
            if self._close_after_flush and not self._out:
                raise _Closed("done", refused=False)
            if not self.closed:
                self._subscribe()
        except _Closed as e:
            self.close(str(e), e.refused)

    def close(self, reason: str = "closed", refused: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if refused:
            self.transport.settings.refusals.refused(self.peer, reason)
        else:
            log.debug("peer connection closed peer=%s reason=%s", self.peer, reason)
        self.transport.poller.unsubscribe(self.fileno)
        try:
            self.sock.close()
        except OSError:
            pass
        self._in.clear()
        self._out.clear()
        self.transport.connection_closed(self)

    # ---- bytes in and out -------------------------------------------------------

    def _read(self) -> None:
        for _ in range(16):  # let other connections have their turn
            try:
                data = self.sock.recv(_READ_CHUNK)
            except OSError as e:
                if e.errno in _RETRYABLE:
                    break
                raise _Closed(f"receive failed: {e.strerror}", refused=False) from None
            if not data:
                raise _Closed("closed by the other side", refused=not self.established)
            if self._tls is not None:
                self._tls_in.write(data)
                self._pump_tls()
            else:
                self._in += data
            self._take_frames()
            if self.closed or len(data) < _READ_CHUNK:
                break

    def _pump_tls(self) -> None:
        try:
            if not self._tls_ready:
                self._tls.do_handshake()
                self._tls_ready = True
                self._tls_established()
            while True:
                chunk = self._tls.read(_READ_CHUNK)
                if not chunk:
                    raise _Closed("closed by the other side", refused=not self.established)
                self._in += chunk
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as e:
            raise _Closed(f"TLS: {e.reason or e}") from None
        finally:
            self._drain_tls_out()

    def _drain_tls_out(self) -> None:
        if self._tls_out is not None and self._tls_out.pending:
            self._out += self._tls_out.read()

    def _flush(self) -> None:
        while self._out:
            try:
                sent = self.sock.send(self._out)
            except OSError as e:
                if e.errno in _RETRYABLE:
                    return
                raise _Closed(f"send failed: {e.strerror}", refused=False) from None
            if sent <= 0:
                return
            del self._out[:sent]

    def _write(self, payload: bytes) -> None:
        frame = _LENGTH.pack(len(payload)) + payload
        if self._tls is not None:
            self._tls.write(frame)
            self._drain_tls_out()
        else:
            self._out += frame
        if len(self._out) > self.transport.settings.max_send_buffer:
            raise _Closed("the other side does not read what is sent to it", refused=False)

    def send_value(self, value: object) -> bool:
        """Queue one message; False when the connection cannot take it."""
        if self.closed:
            return False
        try:
            payload = codec.encode(value)
            if self._seal_out is not None:
                payload = self._seal_out.seal(payload)
            self._write(payload)
            self._flush()
            self._subscribe()
        except _Closed as e:
            self.close(str(e), e.refused)
            return False
        return not self.closed

    def _take_frames(self) -> None:
        while len(self._in) >= _LENGTH.size and not self.closed:
            # the frames after the handshake may be larger: decided frame by frame
            limit = self.transport.settings.max_frame if self.established else HANDSHAKE_FRAME_LIMIT
            (length,) = _LENGTH.unpack_from(self._in)
            if length > limit:
                raise _Closed(f"a frame of {length} bytes, over the limit of {limit}")
            end = _LENGTH.size + length
            if len(self._in) < end:
                return
            payload = bytes(self._in[_LENGTH.size:end])
            del self._in[:end]
            self._on_frame(payload)

    def _on_frame(self, payload: bytes) -> None:
        if self.established:
            if self._seal_in is not None:
                try:
                    payload = self._seal_in.open(payload)
                except InvalidTag:
                    raise _Closed("a frame not sealed with the session's key") from None
            try:
                message = codec.decode(payload)
            except codec.DecodeError as e:
                raise _Closed(str(e)) from None
            self.transport.deliver(self, message)
            return
        try:
            value = codec.decode(payload)
        except codec.DecodeError as e:
            raise _Closed(f"not a raftkv peer handshake ({e})") from None
        if not isinstance(value, dict):
            raise _Closed("not a raftkv peer handshake")
        try:
            getattr(self, f"_on_{self._awaiting}")(payload, value)
        except HandshakeRefused as e:
            if not self.outgoing:
                self._write(codec.encode({"error": str(e)}))
                self._flush()
            raise _Closed(str(e)) from None

    # ---- the handshake ------------------------------------------------------

    def _start_tls_or_hello(self) -> None:
        security = self.transport.settings.security
        context = security.client_tls if self.outgoing else security.server_tls
        if context is None:
            self._tls_established()
            return
        self._tls_in, self._tls_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        host = self.target.host if self.outgoing else None
        self._tls = context.wrap_bio(self._tls_in, self._tls_out, server_side=not self.outgoing,
                                     server_hostname=host if self.outgoing and context.check_hostname else None)
        self._tls_ready = False
        self._pump_tls()

    def _tls_established(self) -> None:
        settings = self.transport.settings
        if not self.outgoing:
            if self._tls is not None and settings.security.allowed_cn is not None:
                cn = certificate_cn(self._tls)
                if cn != settings.security.allowed_cn:
                    raise _Closed(f"certificate CN {cn!r} is not the allowed {settings.security.allowed_cn!r}")
            return
        self._nonce = new_nonce()
        hello = {"raftkv": PROTOCOL_VERSION, "kind": self.transport.dial_kind, "from": settings.address,
                 "cluster": settings.cluster_id(), "nonce": self._nonce,
                 "auth": "secret" if settings.security.secret else "none"}
        self._hello = codec.encode(hello)
        self._write(self._hello)

    def _on_hello(self, payload: bytes, hello: dict) -> None:
        """The listener's side: decide whether the dialer may talk to this member."""
        settings = self.transport.settings
        secret = settings.security.secret
        if hello.get("raftkv") != PROTOCOL_VERSION:
            raise HandshakeRefused(f"unknown protocol {hello.get('raftkv')!r}")
        kind, sender, cluster, nonce = hello.get("kind"), hello.get("from"), hello.get("cluster"), hello.get("nonce")
        if not (isinstance(sender, str) and isinstance(cluster, int) and isinstance(nonce, bytes)):
            raise HandshakeRefused("a malformed handshake")
        self.peer = f"{self.peer} ({sender})"
        if (hello.get("auth") == "secret") != (secret is not None):
            raise HandshakeRefused("peer secret mismatch (one side has none)")
        mine = settings.cluster_id()
        if mine and cluster and mine != cluster:
            raise HandshakeRefused(f"cluster ID mismatch (local={mine:x}, remote={cluster:x})")
        if kind == "member":
            if sender not in self.transport.voters:
                raise HandshakeRefused(f"{sender} is not a member of this cluster")
        elif kind == "learner":
            if not settings.is_learner(sender):
                raise HandshakeRefused(f"{sender} is not a learner of this cluster")
        elif kind != "query":
            raise HandshakeRefused(f"unknown connection kind {kind!r}")
        self.kind, self._sender, self._their_cluster, self._their_nonce = kind, sender, cluster, nonce
        self._hello = payload
        self._nonce = new_nonce()
        accept = {"cluster": mine, "nonce": self._nonce}
        if secret is not None:
            accept["proof"] = accept_proof(secret, payload, self._nonce)
        self._accept = codec.encode(accept)
        self._write(self._accept)
        if secret is None:
            self._become_established()
        else:
            self._awaiting = "proof"

    def _on_proof(self, payload: bytes, message: dict) -> None:
        secret = self.transport.settings.security.secret
        if not proofs_match(dial_proof(secret, self._hello, self._accept), message.get("proof")):
            raise HandshakeRefused("peer secret mismatch")
        self._seal_out, self._seal_in = session_seals(secret, self._their_nonce, self._nonce, dialing=False)
        self._become_established()

    def _on_accept(self, payload: bytes, accept: dict) -> None:
        """The dialer's side: the listener's answer."""
        settings = self.transport.settings
        if "error" in accept:
            raise _Closed(f"refused by the other side: {accept['error']}")
        secret = settings.security.secret
        cluster, nonce = accept.get("cluster"), accept.get("nonce")
        if not (isinstance(cluster, int) and isinstance(nonce, bytes)):
            raise _Closed("a malformed handshake answer")
        mine = settings.cluster_id()
        if mine and cluster and mine != cluster:
            raise _Closed(f"cluster ID mismatch (local={mine:x}, remote={cluster:x})")
        if secret is not None:
            if not proofs_match(accept_proof(secret, self._hello, nonce), accept.get("proof")):
                raise _Closed("peer secret mismatch")
            self._write(codec.encode({"proof": dial_proof(secret, self._hello, payload)}))
            self._seal_out, self._seal_in = session_seals(secret, self._nonce, nonce, dialing=True)
        if cluster:
            settings.learn_cluster_id(cluster)
        self.established = True
        self.node = self.target
        self.transport.connection_established(self)

    def _become_established(self) -> None:
        """The listener's side, once the dialer passed every check."""
        self.established = True
        if self.kind == "query":
            self.send_value({"members": self.transport.settings.members_answer()})
            self._close_after_flush = True
            return
        if self._their_cluster:
            self.transport.settings.learn_cluster_id(self._their_cluster)
        self.transport.incoming_established(self, self._sender)


def _address_text(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


def _resolve(host: str, port: int) -> tuple[int, tuple]:
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    return family, sockaddr


class PeerTransport(Transport):
    """pysyncobj's Transport interface over PeerConnections.

    As pysyncobj's own transport: the member with the greater address dials
    (learners dial every voter), one connection per pair carries both ways.
    """

    def __init__(self, syncObj, selfNode, otherNodes) -> None:  # noqa: N803 (pysyncobj's signature)
        super().__init__(syncObj, selfNode, otherNodes)
        self._syncObj = syncObj
        self.settings: PeerSettings = syncObj.peer_settings
        self.poller = syncObj._poller
        self._self_node = selfNode
        self.self_address = self.settings.address
        self.dial_kind = "member" if selfNode is not None else "learner"
        self._nodes: set[TCPNode] = set()
        self.voters_by_id: dict[str, TCPNode] = {}
        self._connections: dict[Node, PeerConnection] = {}
        self._pending: set[PeerConnection] = set()
        self._readonly: set[Node] = set()
        self._readonly_counter = 0
        self._next_attempt: dict[Node, float] = {}
        self._retry_delay: dict[Node, float] = {}  # grows while a peer keeps refusing us
        self._server: socket.socket | None = None
        self._destroyed = False
        syncObj.addOnTickCallback(self._on_tick)
        for node in otherNodes:
            self.addNode(node)
        if selfNode is not None:
            self._listen()  # at once, so a port in use fails the member's start

    @property
    def voters(self) -> dict[str, TCPNode]:
        return self.voters_by_id

    # ---- listening ----------------------------------------------------------------

    def _listen(self) -> None:
        address = self.settings.bind_address or self.self_address
        host, port = address.rsplit(":", 1)
        family, sockaddr = _resolve(host.strip("[]"), int(port))
        server = socket.socket(family, socket.SOCK_STREAM)
        try:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(sockaddr)
            server.listen(128)
        except OSError as e:
            server.close()
            raise OSError(e.errno, f"cannot listen for peers on {address}: {e.strerror}") from None
        server.setblocking(False)
        self._server = server
        self.poller.subscribe(server.fileno(), self._on_accept, POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR)
        log.info("listening for peers address=%s", _address_text(server.getsockname()))

    def _on_accept(self, descr: int, events: int) -> None:
        if self._server is None or descr != self._server.fileno():
            return
        for _ in range(64):
            try:
                sock, address = self._server.accept()
            except OSError:
                return
            sock.setblocking(False)
            if len(self._pending) >= self.settings.max_pending_connections:
                self.settings.refusals.refused(_address_text(address), "too many connections in handshake")
                sock.close()
                continue
            _tune(sock)
            self._pending.add(PeerConnection(self, sock, outgoing=False))

    def tryGetReady(self) -> None:  # noqa: N802 (pysyncobj's interface)
        pass

    @property
    def ready(self) -> bool:
        return True

    def waitReady(self) -> None:  # noqa: N802
        pass

    # ---- nodes ----------------------------------------------------------------------

    def _should_dial(self, node: Node) -> bool:
        return isinstance(node, TCPNode) and (self._self_node is None or self.self_address > node.address)

    def addNode(self, node) -> None:  # noqa: N802
        self._nodes.add(node)
        self.voters_by_id[node.address] = node

    def dropNode(self, node) -> None:  # noqa: N802
        conn = self._connections.pop(node, None)
        if isinstance(node, TCPNode):
            self._nodes.discard(node)
            self.voters_by_id.pop(node.address, None)
        else:
            self._readonly.discard(node)
        self._next_attempt.pop(node, None)
        self._retry_delay.pop(node, None)
        if conn is not None:
            conn.node = None  # no disconnect callback, no reconnect
            conn.close("the member left the cluster")

    def _dial(self, node: TCPNode) -> None:
        now = time.monotonic()
        if now < self._next_attempt.get(node, 0.0):
            return
        self._next_attempt[node] = now + self._retry_delay.get(node, self._syncObj.conf.connectionRetryTime)
        try:
            family, sockaddr = _resolve(node.host.strip("[]"), node.port)
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as e:
            log.debug("cannot dial peer=%s error=%s", node.address, e)
            return
        sock.setblocking(False)
        _tune(sock)
        try:
            sock.connect(sockaddr)
        except OSError as e:
            if e.errno not in _RETRYABLE:
                sock.close()
                return
        conn = PeerConnection(self, sock, outgoing=True, target=node)
        conn.peer = node.address
        self._pending.add(conn)

    def _on_tick(self) -> None:
        if self._destroyed:
            return
        now = time.monotonic()
        for conn in list(self._pending):
            if now - conn.started > self.settings.handshake_timeout and not conn.established:
                conn.close(f"handshake not finished within {self.settings.handshake_timeout:g}s",
                           refused=not conn.outgoing)
        dialing = {c.target for c in self._pending if c.outgoing}
        for node in list(self._nodes):
            if node not in self._connections and node not in dialing and self._should_dial(node):
                self._dial(node)

    # ---- connection events -------------------------------------------------------

    def connection_established(self, conn: PeerConnection) -> None:
        """An outgoing connection passed the handshake."""
        self._pending.discard(conn)
        node = conn.target
        if node not in self._nodes:
            conn.node = None
            conn.close("the member left the cluster")
            return
        self._retry_delay.pop(node, None)
        self._replace(node, conn)
        self._onNodeConnected(node)

    def incoming_established(self, conn: PeerConnection, sender: str) -> None:
        self._pending.discard(conn)
        if conn.kind == "member":
            node = self.voters_by_id.get(sender)
            if node is None:  # removed meanwhile
                conn.close(f"{sender} is not a member of this cluster", refused=True)
                return
            conn.node = node
            self._replace(node, conn)
            self._onNodeConnected(node)
        else:
            node = Node(f"learner-{self._readonly_counter}")
            self._readonly_counter += 1
            conn.node = node
            self._readonly.add(node)
            self._connections[node] = conn
            self._onReadonlyNodeConnected(node)

    def _replace(self, node: Node, conn: PeerConnection) -> None:
        old = self._connections.get(node)
        self._connections[node] = conn
        if old is not None and old is not conn:
            old.node = None
            old.close("replaced by a newer connection")

    def connection_closed(self, conn: PeerConnection) -> None:
        self._pending.discard(conn)
        if conn.outgoing and not conn.established and not conn.connecting and conn.target is not None:
            # it answered but did not take us (another cluster, another secret): try less often
            delay = self._retry_delay.get(conn.target, self._syncObj.conf.connectionRetryTime)
            self._retry_delay[conn.target] = min(delay * 2, MAX_RETRY_DELAY)
        node = conn.node
        if node is None or self._connections.get(node) is not conn:
            return
        del self._connections[node]
        if node in self._readonly:
            self._readonly.discard(node)
            self._onReadonlyNodeDisconnected(node)
        elif not self._destroyed:
            self._onNodeDisconnected(node)

    def deliver(self, conn: PeerConnection, message: object) -> None:
        if conn.node is not None and self._connections.get(conn.node) is conn:
            self._onMessageReceived(conn.node, message)

    # ---- pysyncobj's interface -------------------------------------------------------

    def is_connected(self, node) -> bool:
        conn = self._connections.get(node)
        return conn is not None and not conn.closed

    def send(self, node, message) -> bool:
        conn = self._connections.get(node)
        if conn is None or conn.closed:
            return False
        return conn.send_value(message)

    def destroy(self) -> None:
        self._destroyed = True
        self.setOnMessageReceivedCallback(None)
        self.setOnNodeConnectedCallback(None)
        self.setOnNodeDisconnectedCallback(None)
        self.setOnReadonlyNodeConnectedCallback(None)
        self.setOnReadonlyNodeDisconnectedCallback(None)
        for conn in list(self._connections.values()) + list(self._pending):
            conn.node = None
            conn.close("the member is stopping")
        self._connections.clear()
        self._pending.clear()
        if self._server is not None:
            self.poller.unsubscribe(self._server.fileno())
            self._server.close()
            self._server = None


def _tune(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 16)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 3)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 5)
    except (OSError, AttributeError):
        pass


@dataclass
class ClusterAnswer:
    members_json: str   # the membership table (raftkv.raft.membership)
    cluster_id: int


def query_members(address: str, security: PeerSecurity, cluster_id: int = 0, sender: str = "",
                  timeout: float = 2.0) -> ClusterAnswer:
    """Ask the member at ``address`` for its cluster id and membership table,
    over a one-off connection that passes the same handshake as a member's."""
    host, port = address.rsplit(":", 1)
    family, sockaddr = _resolve(host.strip("[]"), int(port))
    with socket.socket(family, socket.SOCK_STREAM) as raw:
        raw.settimeout(timeout)
        raw.connect(sockaddr)
        sock: socket.socket = raw
        if security.client_tls is not None:
            sock = security.client_tls.wrap_socket(
                raw, server_hostname=host if security.client_tls.check_hostname else None)

        def send(payload: bytes) -> None:
            sock.sendall(_LENGTH.pack(len(payload)) + payload)

        def receive(limit: int = HANDSHAKE_FRAME_LIMIT) -> bytes:
            header = _recv_exactly(sock, _LENGTH.size)
            (length,) = _LENGTH.unpack(header)
            if length > limit:
                raise ConnectionError(f"{address}: an answer of {length} bytes")
            return _recv_exactly(sock, length)

        nonce = new_nonce()
        hello = codec.encode({"raftkv": PROTOCOL_VERSION, "kind": "query", "from": sender, "cluster": cluster_id,
                              "nonce": nonce, "auth": "secret" if security.secret else "none"})
        send(hello)
        accept_bytes = receive()
        accept = codec.decode(accept_bytes)
        if not isinstance(accept, dict) or "error" in accept:
            raise ConnectionError(f"{address} refused: {accept.get('error') if isinstance(accept, dict) else accept}")
        seal_in = None
        if security.secret is not None:
            if not proofs_match(accept_proof(security.secret, hello, accept.get("nonce", b"")), accept.get("proof")):
                raise ConnectionError(f"{address}: peer secret mismatch")
            send(codec.encode({"proof": dial_proof(security.secret, hello, accept_bytes)}))
            _, seal_in = session_seals(security.secret, nonce, accept["nonce"], dialing=True)
        answer = receive(64 * 1024 * 1024)
        if seal_in is not None:
            answer = seal_in.open(answer)
        value = codec.decode(answer)
        if not isinstance(value, dict) or not isinstance(value.get("members"), str) \
                or not isinstance(accept.get("cluster"), int):
            raise ConnectionError(f"{address}: a malformed answer")
        return ClusterAnswer(value["members"], accept["cluster"])


def _recv_exactly(sock: socket.socket, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed by the other side")
        data += chunk
    return bytes(data)
