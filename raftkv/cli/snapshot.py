"""``raftkv snapshot save|status|restore``.

A snapshot is raftkv's own file (see raftkv.server.snapshot): the live keys
and leases at one revision, with a sha256 at the end. ``restore`` turns one
into the data directory of a new single-member cluster that starts at the
snapshot's revision, with every key's revisions and version and every lease
as they were; grow it back with ``raftkv member add``.
"""

from __future__ import annotations

import os
import zlib
from urllib.parse import urlparse

import click
import grpc

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv.cli import output, rpc
from raftkv.cli.context import CLIError, client, group, write_out
from raftkv.errors import RaftKVError


def register(cli: click.Group) -> None:
    cli.add_command(snapshot)


@group("snapshot")
def snapshot() -> None:
    """Save a member's state to a file, inspect one, restore one.

    \b
    Example:
        raftkv snapshot save backup.snap
        raftkv snapshot status backup.snap -w table
        raftkv snapshot restore backup.snap --data-dir restored.raftkv --name m0 \\
            --initial-advertise-peer-urls http://127.0.0.1:2380
    """


def _load(path: str):
    from raftkv.server.snapshot import SnapshotError, read_snapshot

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CLIError(f"{path}: {e.strerror}") from None
    try:
        return read_snapshot(data), len(data)
    except SnapshotError as e:
        raise CLIError(f"{path}: {e} — is it a file `raftkv snapshot save` wrote?") from None


@snapshot.command("save")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
def save(path: str) -> None:
    """Stream a snapshot of a member to PATH (written atomically, checked).

    \b
    Example:
        raftkv snapshot save backup.snap
    """
    write_out((output.SIMPLE, output.JSON))
    c = client()
    part = path + ".part"
    received = 0
    last: grpc.RpcError | None = None
    for index in rpc.endpoint_order(c):
        stub = rpc_pb2_grpc.MaintenanceStub(rpc.channel(c, index))
        try:
            with open(part, "wb") as f, output.progress(None, "snapshot") as bar:
                received = 0
                for chunk in stub.Snapshot(rpc_pb2.SnapshotRequest(), timeout=max(c.timeout, 60.0)):
                    f.write(chunk.blob)
                    received += len(chunk.blob)
                    bar.update(len(chunk.blob))
                f.flush()
                os.fsync(f.fileno())
            break
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE and len(c.endpoints) > 1:
                last = e
                continue
            _remove(part)
            raise rpc.typed(e) from None
        except BaseException:
            _remove(part)
            raise
    else:
        _remove(part)
        raise rpc.typed(last) from None
    try:
        _load(part)
    except CLIError as e:
        _remove(part)
        raise CLIError(f"the snapshot received is damaged ({e.format_message()}); try again") from None
    os.replace(part, path)
    click.echo(f"Snapshot saved at {path}")


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def snapshot_hash(state) -> int:
    """A crc32 over every key and value in order (etcd hashes its bolt file instead)."""
    h = 0
    for kv in state.kvs:
        h = zlib.crc32(kv.key, h)
        h = zlib.crc32(kv.value, h)
    return h


@snapshot.command("status")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def status(path: str) -> None:
    """Hash, revision, number of keys and size of a snapshot file.

    \b
    Examples:
        raftkv snapshot status backup.snap
        raftkv snapshot status backup.snap -w table
    """
    fmt = write_out()
    state, size = _load(path)
    h = snapshot_hash(state)
    if fmt == output.JSON:
        output.echo_json({"hash": h, "revision": state.revision, "totalKey": len(state.kvs),
                          "totalSize": size})
    elif fmt == output.TABLE:
        click.echo(output.boxed_table(["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
                                      [[f"{h:x}", state.revision, len(state.kvs),
                                        output.humanize_bytes(size)]]))
    else:
        click.echo(f"{h:x}, {state.revision}, {len(state.kvs)}, {output.humanize_bytes(size)}")


def _store_state(state) -> dict:
    """The KV store's snapshot form (KVStore.snapshot) of a snapshot file:
    live keys only, so history before the snapshot's revision is compacted."""
    return {
        "revision": state.revision,
        "compact_revision": max(state.revision, state.compact_revision),
        "keys": [(kv.key, [kv]) for kv in state.kvs],
        "history": [],
        "leases": [(lease_id, ttl, sorted(keys)) for lease_id, ttl, keys in state.leases],
    }


def restore_data_dir(state, data_dir: str, name: str, peer_url: str, step=lambda text: None) -> None:
    """Write ``state`` as the data directory of a single-member cluster
    that ``raftkv serve`` on ``peer_url`` starts from."""
    from raftkv.raft.bootstrap import write_restored_data_dir
    from raftkv.server.serve import host_port

    address = host_port(peer_url)
    step(f"writing {len(state.kvs)} keys and {len(state.leases)} leases at revision {state.revision}")
    write_restored_data_dir(data_dir, address, _store_state(state),
                            {"address": address, "name": name, "peer_urls": [peer_url], "client_urls": []})


@snapshot.command("restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--data-dir", required=True, help="A new directory for the member's data.")
@click.option("--name", default="default", show_default=True, help="The member's name.")
@click.option("--initial-advertise-peer-urls", "peer_url", default="http://127.0.0.1:2380",
              show_default=True, help="The member's peer URL.")
@click.option("--initial-cluster", default=None,
              help="NAME=PEER-URL of the one member (as etcdctl takes it; one member only).")
def restore(path: str, data_dir: str, name: str, peer_url: str, initial_cluster: str | None) -> None:
    """Restore a snapshot into a new data directory for a single member.

    The member starts at the snapshot's revision, with every key (its
    create and mod revisions, version and lease) and every lease. Start it
    with `raftkv serve`, then add members with `raftkv member add`: they
    copy the state from it.

    \b
    Example:
        raftkv snapshot restore backup.snap --data-dir m0.raftkv --name m0 \\
            --initial-advertise-peer-urls http://127.0.0.1:2380
        raftkv serve --name m0 --data-dir m0.raftkv --listen-peer-urls http://127.0.0.1:2380 \\
            --listen-client-urls http://127.0.0.1:2379
    """
    write_out((output.SIMPLE,))
    peer_url = peer_url.split(",")[0].strip()
    if initial_cluster:
        members = [p.strip() for p in initial_cluster.split(",") if p.strip()]
        if len(members) != 1:
            raise click.UsageError(
                "raftkv restores a snapshot into one member: give --initial-cluster with that member "
                "only, start it, then add the others with `raftkv member add`")
        member_name, _, url = (part.strip() for part in members[0].partition("="))
        if member_name != name:
            raise click.UsageError(f"--initial-cluster names {member_name!r} but --name is {name!r}")
        source = click.get_current_context().get_parameter_source("peer_url")
        if source is click.core.ParameterSource.DEFAULT:
            peer_url = url
        elif url != peer_url:
            raise click.UsageError("--initial-cluster and --initial-advertise-peer-urls disagree "
                                   f"({url} and {peer_url})")
    parsed = urlparse(peer_url)
    if not parsed.hostname or not parsed.port:
        raise click.BadParameter(f"{peer_url!r} is not a URL like http://127.0.0.1:2380",
                                 param_hint="--initial-advertise-peer-urls")
    if os.path.exists(data_dir) and (not os.path.isdir(data_dir) or os.listdir(data_dir)):
        raise CLIError(f"{data_dir} already exists and is not empty — restore into a new directory")
    state, _size = _load(path)
    verbose = output.stderr_is_terminal()

    def step(text: str) -> None:
        if verbose:
            click.echo(f"restore: {text}...", err=True)

    try:
        restore_data_dir(state, data_dir, name, peer_url, step)
    except (RaftKVError, OSError) as e:
        raise CLIError(f"restore into {data_dir} failed: {e}") from None
    click.echo(f"Restored {path} (revision {state.revision}, {len(state.kvs)} keys, "
               f"{len(state.leases)} leases) into {data_dir} for member {name} at {peer_url}")
    click.echo("Start it with:")
    click.echo(f"  raftkv serve --name {name} --data-dir {data_dir} --listen-peer-urls {peer_url} "
               f"--initial-advertise-peer-urls {peer_url} --initial-cluster {name}={peer_url} "
               f"--listen-client-urls http://{parsed.hostname}:2379")

