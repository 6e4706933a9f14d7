"""A TCP proxy in front of every member's peer port that can cut the links between members.

    proxy = PartitionProxy()
    cluster = LocalCluster(3, tmp, peer_proxy=proxy)   # members advertise the proxy's ports
    proxy.cut({("m0", "m1"), ("m1", "m0")})            # m0 and m1 no longer hear each other
    proxy.heal()

Member j listens on a hidden port and advertises another one, where this
proxy listens and forwards to it. Connections come from 127.0.0.1 whoever
opens them, so on accept the proxy finds the connecting process: the socket's
inode in /proc/net/tcp, then the member whose process group holds it (the
member may run under a wrapper such as strace, the server being its child).
A connection from anything else (a client tool) is never cut. A member's
process may connect before the proxy knows it (``member.process`` is set once
Popen returns, and a busy machine can run the new process first): a
connection whose origin was not found is looked for again, on its next read,
whenever a member's process has changed since the last look, so it is cut
like the others from then on.

A link is directed: (src, dst) down means what src sends to dst is lost.
Bytes written by the connector pass to the member behind the port while
(connector, member) is up, and the other way while (member, connector) is up.
A chunk that may not pass is discarded, and from then on that direction of
that connection discards everything: the stream never resumes with a hole in
it. heal() closes every such connection, so applications see silence, then
the connection end, then reconnect. New connections during a cut are accepted
and follow the same rule, so a cut link behaves as one that drops packets.

One daemon thread runs a selector over every socket.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
HIGH_WATER = 4 * 1024 * 1024  # stop reading a side while this much waits to be written to the other
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


# ---- who opened a connection ---------------------------------------------------------

def _proc_net_address(host: str, port: int) -> str:
    """An IPv4 address as /proc/net/tcp writes it: 127.0.0.1:8080 -> 0100007F:1F90."""
    (n,) = struct.unpack("<I", socket.inet_aton(host))
    return f"{n:08X}:{port:04X}"


def socket_inode(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """The inode of the IPv4 TCP socket from ``local`` to ``remote`` in this network namespace."""
    want = (_proc_net_address(*local), _proc_net_address(*remote))
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[1] == want[0] and fields[2] == want[1]:
                    return int(fields[9]) or None
    except (OSError, StopIteration, IndexError, ValueError):
        pass
    return None


def _holds(pid: int, link: str) -> bool:
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"{fd_dir}/{fd}") == link:
                return True
        except OSError:
            continue
    return False


def _process_group(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # after "pid (comm)": state, ppid, pgrp
            return int(f.read().rsplit(b")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def _group_members(pgids: set[int]) -> dict[int, list[int]]:
    """Every process of each of these process groups."""
    groups: dict[int, list[int]] = {g: [] for g in pgids}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            group = _process_group(int(entry))
            if group in groups:
                groups[group].append(int(entry))
    return groups


# ---- the proxy ---------------------------------------------------------------------------

class _End:
    """One socket of a proxied connection. ``src`` writes what arrives on it,
    for ``dst``; ``out`` waits to be written to it."""

    __slots__ = ("sock", "conn", "peer", "src", "dst", "out", "eof", "dead", "shut", "shut_done", "events")

    def __init__(self, sock: socket.socket, conn: _Conn, src: str | None, dst: str | None) -> None:
        self.sock = sock
        self.conn = conn
        self.peer: _End = self
        self.src, self.dst = src, dst
        self.out = bytearray()
        self.eof = False          # nothing more will be read from it
        self.dead = False         # lost bytes: everything read from it is discarded
        self.shut = False         # shut its write side once ``out`` is written
        self.shut_done = False
        self.events = 0           # what it is registered for


class _Conn:
    __slots__ = ("client", "server", "connecting", "tainted", "closed", "origin", "looked_at")

    def __init__(self, client: socket.socket, server: socket.socket, connector: str | None,
                 owner: str | None) -> None:
        self.client = _End(client, self, connector, owner)
        self.server = _End(server, self, owner, connector)
        self.client.peer, self.server.peer = self.server, self.client
        self.connecting = True
        self.tainted = False
        self.closed = False
        # while the connector is unknown: (its address, the proxy's), and the
        # member processes it was looked for among
        self.origin: tuple[tuple[str, int], tuple[str, int]] | None = None
        self.looked_at: tuple = ()


class _Listener:
    __slots__ = ("sock", "member")

    def __init__(self, sock: socket.socket, member) -> None:
        self.sock = sock
        self.member = member


class PartitionProxy:
    """See the module's doc. Members are objects with ``name``, ``peer_port``
    (where the proxy listens), ``listen_peer_port`` (where it forwards) and
    ``process`` (a Popen that leads its own process group, or None)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._selector = selectors.DefaultSelector()
        self._members: dict[str, object] = {}
        self._server_pid: dict[str, int] = {}   # the last process found holding a member's socket
        self._down: frozenset[tuple[str, str]] = frozenset()
        self._conns: set[_Conn] = set()
        self._listeners: list[_Listener] = []
        self._calls: deque[tuple[Callable[[], None], threading.Event]] = deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, READ, None)
        self._thread: threading.Thread | None = None
        self._closing = False
        self.stats = {"connections": 0, "unknown_sources": 0, "identified_late": 0, "bytes": 0,
                      "dropped_bytes": 0, "closed_at_heal": 0}

    # ---- public ------------------------------------------------------------------

    def add_member(self, member) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, member.peer_port))
        sock.listen(128)
        sock.setblocking(False)
        listener = _Listener(sock, member)

        def register() -> None:  # in the loop thread, which iterates over _members
            self._members[member.name] = member
            self._listeners.append(listener)
            self._selector.register(sock, READ, listener)

        self._call(register)
        log.info("proxying member=%s port=%d -> %d", member.name, member.peer_port, member.listen_peer_port)

    def start(self) -> None:
        if self._thread is None and not self._closing:
            self._thread = threading.Thread(target=self._run, name="bench-peer-proxy", daemon=True)
            self._thread.start()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for conn in list(self._conns):
            self._close(conn)
        for listener in self._listeners:
            listener.sock.close()
        self._listeners.clear()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def cut(self, links: Iterable[tuple[str, str]]) -> None:
        """From now on, what src sends to dst is lost, for each (src, dst)."""
        self._down = self._down | frozenset(links)
        log.info("links down: %s", sorted(self._down))

    def heal(self) -> None:
        """Every link up again; every connection that lost bytes is closed."""
        self._down = frozenset()
        self._call(self._close_tainted)
        log.info("links healed")

    @property
    def down(self) -> frozenset[tuple[str, str]]:
        return self._down

    # ---- the loop thread -----------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass  # full already: it will wake

    def _call(self, fn: Callable[[], None], timeout: float = 10.0) -> None:
        """Run ``fn`` where the selector may be touched: in the loop thread once it runs."""
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            fn()
            return
        done = threading.Event()
        self._calls.append((fn, done))
        self._wake()
        if not done.wait(timeout):
            raise TimeoutError("the peer proxy's loop did not answer")

    def _run(self) -> None:
        while not self._closing:
            try:
                ready = self._selector.select(timeout=1.0)
            except OSError as e:  # a socket closed under us: never end the loop for it
                log.warning("peer proxy select failed error=%s", e)
                continue
            for key, mask in ready:
                try:
                    self._dispatch(key, mask)
                except Exception:  # noqa: BLE001 -- one bad connection must not stop the others
                    log.exception("peer proxy event failed")
                    if isinstance(key.data, _End):
                        self._close(key.data.conn)
            while self._calls:
                fn, done = self._calls.popleft()
                try:
                    fn()
                except Exception:  # noqa: BLE001
                    log.exception("peer proxy call failed")
                finally:
                    done.set()

    def _dispatch(self, key: selectors.SelectorKey, mask: int) -> None:
        data = key.data
        if data is None:
            try:
                while self._wake_r.recv(4096):
                    pass
            except OSError:
                pass
        elif isinstance(data, _Listener):
            self._accept(data)
        elif not data.conn.closed:
            end: _End = data
            if end.conn.connecting and end is end.conn.server:
                self._finish_connect(end.conn)
                return
            if mask & READ:
                self._read(end)
            if mask & WRITE and not end.conn.closed:
                self._flush(end)

    def _up(self, src: str | None, dst: str | None) -> bool:
        return src is None or dst is None or (src, dst) not in self._down

    def _accept(self, listener: _Listener) -> None:
        while True:
            try:
                client, address = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warning("accept failed member=%s error=%s", listener.member.name, e)
                return
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            origin = (address[:2], listener.sock.getsockname()[:2])
            looked_at = self._processes()  # before looking: a process set meanwhile is a change
            connector = self._identify(*origin)
            owner = listener.member.name
            self.stats["connections"] += 1
            if connector is None:
                self.stats["unknown_sources"] += 1
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.setblocking(False)
            server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = server.connect_ex((self.host, listener.member.listen_peer_port or listener.member.peer_port))
            if err not in (0, errno.EINPROGRESS):
                log.debug("member not listening member=%s error=%s", owner, os.strerror(err))
                client.close()
                server.close()
                continue
            conn = _Conn(client, server, connector, owner)
            conn.connecting = err != 0
            if connector is None:
                conn.origin, conn.looked_at = origin, looked_at
            self._conns.add(conn)
            log.debug("connection %s -> %s", connector, owner)
            self._update(conn.client)
            self._update(conn.server)

    def _processes(self) -> tuple:
        """Every member's current process object: it changes when one (re)starts."""
        return tuple(getattr(member, "process", None) for member in self._members.values())

    def _identify_again(self, conn: _Conn) -> None:
        """Look again for the origin of a connection from an unknown source if
        a member's process changed since the last look (a member's connection
        may come before the proxy knows its process; a client tool's never
        becomes known, and is not looked for at every read)."""
        processes = self._processes()
        if conn.origin is None or processes == conn.looked_at:
            return
        conn.looked_at = processes
        connector = self._identify(*conn.origin)
        if connector is None:
            return
        conn.origin = None
        conn.client.src = conn.server.dst = connector
        self.stats["unknown_sources"] -= 1
        self.stats["identified_late"] += 1
        log.debug("connection %s -> %s (found late)", connector, conn.server.src)

    def _identify(self, address: tuple[str, int], listening: tuple[str, int]) -> str | None:
        inode = socket_inode(address[:2], listening[:2])
        if inode is None:
            return None
        link = f"socket:[{inode}]"
        groups = {}
        for name, member in self._members.items():
            process = getattr(member, "process", None)
            if process is None or process.poll() is not None:
                continue
            groups[process.pid] = name
            cached = self._server_pid.get(name)
            for pid in (process.pid, cached):
                if pid is not None and _process_group(pid) == process.pid and _holds(pid, link):
                    return name
        # under a wrapper the server is another process of the member's group
        for pgid, pids in _group_members(set(groups)).items():
            for pid in pids:
                if pid != pgid and _holds(pid, link):
                    self._server_pid[groups[pgid]] = pid
                    return groups[pgid]
        return None

    def _finish_connect(self, conn: _Conn) -> None:
        err = conn.server.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            log.debug("connect to member failed member=%s error=%s", conn.server.src, os.strerror(err))
            self._close(conn)
            return
        conn.connecting = False
        self._flush(conn.server)
        self._update(conn.client)

    def _read(self, end: _End) -> None:
        conn = end.conn
        try:
            data = end.sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if conn.origin is not None:
            self._identify_again(conn)
        if not data:
            end.eof = True
            if end.dead or not self._up(end.src, end.dst):
                # the FIN is lost like the bytes would be; heal() ends the connection
                end.dead = conn.tainted = True
            else:
                end.peer.shut = True
                self._flush(end.peer)
            if not conn.closed:
                self._update(end)
                self._maybe_done(conn)
            return
        if end.dead:
            self.stats["dropped_bytes"] += len(data)
            return
        if not self._up(end.src, end.dst):
            end.dead = conn.tainted = True
            self.stats["dropped_bytes"] += len(data)
            log.debug("dropping %s -> %s", end.src, end.dst)
            return
        self.stats["bytes"] += len(data)
        peer = end.peer
        peer.out += data
        self._flush(peer)
        if not conn.closed:
            self._update(end)

    def _flush(self, end: _End) -> None:
        conn = end.conn
        if conn.connecting and end is conn.server:
            return
        if end.out:
            try:
                sent = end.sock.send(end.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(conn)
                return
            del end.out[:sent]
        if not end.out and end.shut and not end.shut_done:
            end.shut_done = True
            try:
                end.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        self._update(end)
        self._update(end.peer)
        self._maybe_done(conn)

    def _maybe_done(self, conn: _Conn) -> None:
        c, s = conn.client, conn.server
        if not conn.closed and not conn.tainted and c.eof and s.eof and not c.out and not s.out:
            self._close(conn)

    def _update(self, end: _End) -> None:
        conn = end.conn
        if conn.closed:
            return
        if conn.connecting and end is conn.server:
            events = WRITE
        else:
            events = 0
            if not end.eof and len(end.peer.out) < HIGH_WATER:
                events |= READ
            if end.out or (end.shut and not end.shut_done):
                events |= WRITE
        if events == end.events:
            return
        if end.events == 0:
            self._selector.register(end.sock, events, end)
        elif events == 0:
            self._selector.unregister(end.sock)
        else:
            self._selector.modify(end.sock, events, end)
        end.events = events

    def _close(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._conns.discard(conn)
        for end in (conn.client, conn.server):
            if end.events:
                try:
                    self._selector.unregister(end.sock)
                except (KeyError, ValueError, OSError):
                    pass
                end.events = 0
            try:
                end.sock.close()
            except OSError:
                pass

    def _close_tainted(self) -> None:
        tainted = [conn for conn in self._conns if conn.tainted]
        for conn in tainted:
            self._close(conn)
        self.stats["closed_at_heal"] += len(tainted)
        if tainted:
            log.info("closed %d connections that lost bytes", len(tainted))
