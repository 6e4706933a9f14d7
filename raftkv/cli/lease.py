"""``raftkv lease grant|revoke|keep-alive|timetolive|list``, as etcdctl prints them."""

from __future__ import annotations

import base64
import queue
import threading

import click
import grpc

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv.cli import output, rpc
from raftkv.cli.context import client, group, write_out
from raftkv.cli.watch import interruptible
from raftkv.errors import LeaseNotFound


def register(cli: click.Group) -> None:
    cli.add_command(lease)


class LeaseID(click.ParamType):
    """A lease ID in hex, as etcdctl takes and prints them."""

    name = "ID"

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        try:
            return int(value, 16)
        except ValueError:
            self.fail(f"bad lease ID ({value}), expecting ID in Hex", param, ctx)


def _flat(header) -> dict:
    return output.header_json(header)


@group("lease")
def lease() -> None:
    """Leases: keys that go away unless kept alive.

    \b
    Example:
        ID=$(raftkv lease grant 30 | awk '{print $2}')
        raftkv put --lease $ID session alive
        raftkv lease keep-alive $ID
    """


@lease.command("grant")
@click.argument("ttl", type=click.IntRange(min=1))
def grant(ttl: int) -> None:
    """Grant a lease of TTL seconds; prints its ID (hex).

    \b
    Example:
        raftkv lease grant 60
    """
    fmt = write_out((output.SIMPLE, output.JSON))
    r = rpc.call(client(), "Lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=ttl))
    if fmt == output.JSON:
        output.echo_json({**_flat(r.header), "ID": r.ID, "TTL": r.TTL, "Error": r.error})
    else:
        click.echo(f"lease {r.ID:016x} granted with TTL({r.TTL}s)")


@lease.command("revoke")
@click.argument("lease_id", metavar="ID", type=LeaseID())
def revoke(lease_id: int) -> None:
    """Revoke a lease, deleting its keys.

    \b
    Example:
        raftkv lease revoke 694d77aa9e38260f
    """
    fmt = write_out((output.SIMPLE, output.JSON))
    r = rpc.call(client(), "Lease", "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=lease_id))
    if fmt == output.JSON:
        output.echo_json(output.pb_to_json(r) or {"header": {}})
    else:
        click.echo(f"lease {lease_id:016x} revoked")


@lease.command("timetolive")
@click.argument("lease_id", metavar="ID", type=LeaseID())
@click.option("--keys", is_flag=True, help="List the keys attached to the lease.")
def timetolive(lease_id: int, keys: bool) -> None:
    """How long a lease has left, and with --keys its keys.

    \b
    Example:
        raftkv lease timetolive 694d77aa9e38260f --keys
    """
    fmt = write_out((output.SIMPLE, output.JSON))
    r = rpc.call(client(), "Lease", "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys),
                 idempotent=True)
    if fmt == output.JSON:
        output.echo_json({**_flat(r.header), "id": r.ID, "ttl": r.TTL, "granted-ttl": r.grantedTTL,
                          "keys": [base64.b64encode(k).decode() for k in r.keys] or None})
        return
    if r.TTL == -1:
        click.echo(f"lease {lease_id:016x} already expired")
        return
    text = f"lease {r.ID:016x} granted with TTL({r.grantedTTL}s), remaining({r.TTL}s)"
    if keys:
        names = " ".join(k.decode(errors="replace") for k in r.keys)
        text += f", attached keys([{names}])"
    click.echo(text)


@lease.command("list")
def list_() -> None:
    """List the leases (IDs in hex).

    \b
    Example:
        raftkv lease list
    """
    fmt = write_out((output.SIMPLE, output.JSON))
    r = rpc.call(client(), "Lease", "LeaseLeases", rpc_pb2.LeaseLeasesRequest(), idempotent=True)
    if fmt == output.JSON:
        output.echo_json({**_flat(r.header), "leases": [{"id": item.ID} for item in r.leases] or None})
        return
    click.echo(f"found {len(r.leases)} leases")
    for item in r.leases:
        click.echo(f"{item.ID:016x}")


def keep_alive_once(c, lease_id: int, timeout: float) -> rpc_pb2.LeaseKeepAliveResponse:
    """Renew once on the first endpoint that answers (``c`` is the Client: this
    runs on threads without a click context)."""
    last: grpc.RpcError | None = None
    for index in rpc.endpoint_order(c):
        stub = rpc_pb2_grpc.LeaseStub(rpc.channel(c, index))
        try:
            return next(iter(stub.LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)]),
                                                 timeout=timeout, metadata=c.metadata())))
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
                    and len(c.endpoints) > 1:
                last = e
                continue
            raise rpc.typed(e) from None
        except StopIteration:
            raise LeaseNotFound() from None
    raise rpc.typed(last) from None


@lease.command("keep-alive")
@click.argument("lease_id", metavar="ID", type=LeaseID())
@click.option("--once", is_flag=True, help="Renew once and exit.")
def keep_alive(lease_id: int, once: bool) -> None:
    """Keep a lease alive until Ctrl-C (or once with --once).

    Renews at a third of the TTL, as etcd's clients do, and prints each
    renewal; ends when the lease expires or is revoked.

    \b
    Examples:
        raftkv lease keep-alive 694d77aa9e38260f
        raftkv lease keep-alive --once 694d77aa9e38260f
    """
    fmt = write_out((output.SIMPLE, output.JSON))
    c = client()
    timeout = c.timeout

    def show(r) -> None:
        if fmt == output.JSON:
            output.echo_json({**_flat(r.header), "ID": r.ID, "TTL": r.TTL})
        else:
            click.echo(f"lease {lease_id:016x} keepalived with TTL({r.TTL})")

    if once:
        r = keep_alive_once(c, lease_id, timeout)
        if r.TTL <= 0:
            raise LeaseNotFound()
        show(r)
        return
    stop = threading.Event()
    results: queue.Queue = queue.Queue()

    def loop() -> None:
        while not stop.is_set():
            try:
                r = keep_alive_once(c, lease_id, timeout)
            except LeaseNotFound:
                results.put(None)
                return
            except Exception as e:  # keep trying while the cluster is briefly away
                results.put(e)
                if stop.wait(1.0):
                    return
                continue
            results.put(r)
            if r.TTL <= 0:
                return
            stop.wait(max(r.TTL / 3.0, 0.5))

    renewer = threading.Thread(target=loop, daemon=True, name="raftkv-cli-keepalive")
    renewer.start()
    with interruptible():
        try:
            while True:
                try:
                    item = results.get(timeout=0.2)
                except queue.Empty:
                    continue
                if isinstance(item, Exception):
                    click.echo(f"keep-alive failed ({item}); retrying", err=True)
                    continue
                if item is None or item.TTL <= 0:
                    if fmt == output.SIMPLE:
                        click.echo(f"lease {lease_id:016x} expired or revoked.")
                    return
                show(item)
        finally:
            stop.set()
            renewer.join(timeout=timeout + 1.0)
