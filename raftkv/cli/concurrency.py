"""``raftkv lock`` and ``raftkv elect``: etcd's v3lock and v3election services.

Both hold a session: a lease kept alive in the background while the lock
or the leadership is held, revoked when the command ends, so a crashed
holder lets go after the TTL.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading

import click
import grpc

from raftkv._proto.etcdserverpb import rpc_pb2
from raftkv._proto.v3electionpb import v3election_pb2, v3election_pb2_grpc
from raftkv._proto.v3lockpb import v3lock_pb2, v3lock_pb2_grpc
from raftkv.cli import output, rpc
from raftkv.cli.context import CLIError, client, command, write_out
from raftkv.cli.kv import execute, print_range
from raftkv.cli.lease import keep_alive_once
from raftkv.cli.watch import Stop, interruptible
from raftkv.client import ops
from raftkv.errors import LeaseNotFound, RaftKVError


def register(cli: click.Group) -> None:
    cli.add_command(lock)
    cli.add_command(elect)


class Session:
    """A lease kept alive at a third of its TTL until closed, then revoked."""

    def __init__(self, ttl: int) -> None:
        self._client = client()
        r = rpc.call(self._client, "Lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=ttl))
        self.lease = r.ID
        self.ttl = r.TTL
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="raftkv-cli-session")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(max(self.ttl / 3.0, 0.5)):
            try:
                if keep_alive_once(self._client, self.lease, self._client.timeout).TTL <= 0:
                    raise LeaseNotFound()
            except LeaseNotFound:
                self.lost.set()
                click.echo(f"session lease {self.lease:016x} expired: the lock or leadership is lost",
                           err=True)
                return
            except RaftKVError:
                continue  # the cluster is briefly away: try again

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._client.timeout + 1.0)
        try:
            rpc.call(self._client, "Lease", "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=self.lease))
        except RaftKVError:
            pass  # gone already, or the cluster is away: the lease expires by itself

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _anywhere(stub_class, method: str, request) -> object:
    """A long call (no deadline) on the first endpoint that is up."""
    c = client()
    last: grpc.RpcError | None = None
    for index in rpc.endpoint_order(c):
        future = getattr(stub_class(rpc.channel(c, index)), method).future(request)
        try:
            while True:
                try:
                    return future.result(timeout=0.2)
                except grpc.FutureTimeoutError:
                    continue
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE and len(c.endpoints) > 1:
                last = e
                continue
            raise rpc.typed(e) from None
        except BaseException:
            future.cancel()
            raise
    raise rpc.typed(last) from None


def _show_key(key: bytes) -> None:
    """The key (and value) as etcdctl shows a held lock or leadership."""
    response = execute(ops.get(key))
    if not response.kvs:
        raise CLIError("lost on init: the key is gone already")
    if write_out((output.SIMPLE, output.JSON)) == output.JSON:
        output.echo_json(output.pb_to_json(response))
    else:
        print_range(response)


def _hold(session: Session) -> None:
    """Until Ctrl-C, SIGTERM or the session is lost."""
    while not session.lost.wait(0.2):
        pass
    raise CLIError("the session lease expired; the lock or leadership was lost")


@command("lock", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
@click.option("--ttl", type=click.IntRange(min=1), default=10, show_default=True,
              help="Session TTL: how long the lock outlives a crashed holder.")
def lock(name: str, cmd: tuple[str, ...], ttl: int) -> None:
    """Acquire the lock NAME; hold it until Ctrl-C, or while CMD runs.

    Prints the lock's key once held. With CMD, runs it holding the lock (its
    environment has ETCD_LOCK_KEY and ETCD_LOCK_REV), releases the lock and
    exits with CMD's exit code.

    \b
    Examples:
        raftkv lock deploy                           # hold until Ctrl-C
        raftkv lock deploy -- ./migrate.sh --all     # run while holding it
    """
    write_out((output.SIMPLE, output.JSON))
    with interruptible(), Session(ttl) as session:
        response = _anywhere(v3lock_pb2_grpc.LockStub, "Lock",
                             v3lock_pb2.LockRequest(name=name.encode(), lease=session.lease))
        try:
            if not cmd:
                _show_key(response.key)
                _hold(session)
                return
            env = {**os.environ, "ETCD_LOCK_KEY": response.key.decode(errors="replace"),
                   "ETCD_LOCK_REV": str(response.header.revision)}
            try:
                child = subprocess.Popen(list(cmd), env=env)
            except OSError as e:
                raise CLIError(f"cannot run {cmd[0]}: {e.strerror}") from None
            try:
                while True:
                    try:
                        code = child.wait(timeout=0.2)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            except Stop:
                child.terminate()
                child.wait()
                raise
        finally:
            try:
                _unlock(response.key)
            except RaftKVError:
                pass
    if cmd:
        raise click.exceptions.Exit(code if code >= 0 else 128 - code)


def _unlock(key: bytes) -> None:
    c = client()
    rpc.call_anywhere(c, v3lock_pb2_grpc.LockStub, "Unlock", v3lock_pb2.UnlockRequest(key=key),
                      timeout=c.timeout)


@command("elect")
@click.argument("name")
@click.argument("proposal", required=False)
@click.option("-l", "--listen", is_flag=True, help="Observe: print each new leader's proposal.")
@click.option("--ttl", type=click.IntRange(min=1), default=60, show_default=True,
              help="Session TTL: how long leadership outlives a crashed leader.")
def elect(name: str, proposal: str | None, listen: bool, ttl: int) -> None:
    """Campaign in election NAME with PROPOSAL, and lead until Ctrl-C; or
    with --listen, print every leader's proposal as it changes.

    \b
    Examples:
        raftkv elect scheduler node-a       # blocks until elected, prints the leader key and value
        raftkv elect scheduler --listen     # in another terminal
    """
    write_out((output.SIMPLE, output.JSON))
    if listen:
        if proposal is not None:
            raise click.UsageError("--listen takes no PROPOSAL")
        _observe(name)
        return
    if proposal is None:
        raise click.UsageError("elect needs a PROPOSAL (or --listen to observe)")
    with interruptible(), Session(ttl) as session:
        response = _anywhere(v3election_pb2_grpc.ElectionStub, "Campaign",
                             v3election_pb2.CampaignRequest(name=name.encode(), lease=session.lease,
                                                            value=proposal.encode()))
        try:
            _show_key(response.leader.key)
            _hold(session)
        finally:
            c = client()
            try:
                rpc.call_anywhere(c, v3election_pb2_grpc.ElectionStub, "Resign",
                                  v3election_pb2.ResignRequest(leader=response.leader), timeout=c.timeout)
            except RaftKVError:
                pass


def _observe(name: str) -> None:
    c = client()
    responses: queue.Queue = queue.Queue()
    calls = []
    stopping = threading.Event()

    def read() -> None:
        attempt = 0
        order = rpc.endpoint_order(c)
        while not stopping.is_set():
            index = order[attempt % len(order)]
            call = v3election_pb2_grpc.ElectionStub(rpc.channel(c, index)).Observe(
                v3election_pb2.LeaderRequest(name=name.encode()), metadata=c.metadata())
            calls.append(call)
            if stopping.is_set():
                call.cancel()
            try:
                for message in call:
                    responses.put(message)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.CANCELLED:
                    return
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    responses.put(rpc.typed(e))
                    return
            attempt += 1
            stopping.wait(0.5 if attempt % len(order) else 1.0)

    reader = threading.Thread(target=read, daemon=True, name="raftkv-cli-observe")
    reader.start()
    fmt = write_out((output.SIMPLE, output.JSON))
    with interruptible():
        try:
            last = None
            while True:
                try:
                    item = responses.get(timeout=0.2)
                except queue.Empty:
                    continue
                if isinstance(item, Exception):
                    raise item
                if (item.kv.key, item.kv.mod_revision) == last:
                    continue  # resumed on another member: the same leader again
                last = (item.kv.key, item.kv.mod_revision)
                if fmt == output.JSON:
                    output.echo_json(output.pb_to_json(item))
                else:
                    output.echo_kv(item.kv)
        finally:
            stopping.set()
            for call in calls:
                call.cancel()
            reader.join(timeout=5.0)
