"""``raftkv member list|add|remove|promote`` and ``raftkv endpoint status|health``."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlparse

import click

from raftkv._proto.etcdserverpb import rpc_pb2
from raftkv.cli import output, rpc
from raftkv.cli.context import CLIError, client, group, settings, write_out
from raftkv.client import ops
from raftkv.errors import RaftKVError
from raftkv.wire import request_to_pb


def register(cli: click.Group) -> None:
    cli.add_command(member)
    cli.add_command(endpoint)


class MemberID(click.ParamType):
    name = "ID"

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        try:
            return int(value, 16)
        except ValueError:
            self.fail(f"bad member ID arg ({value}), expecting ID in Hex", param, ctx)


def member_list() -> rpc_pb2.MemberListResponse:
    return rpc.call(client(), "Cluster", "MemberList", rpc_pb2.MemberListRequest(), idempotent=True)


def member_rows(members) -> list[list[str]]:
    return [[f"{m.ID:x}", "started" if m.name else "unstarted", m.name, ",".join(m.peerURLs),
             ",".join(m.clientURLs), "true" if m.isLearner else "false"] for m in members]


MEMBER_HEADER = ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"]


@group("member")
def member() -> None:
    """Cluster membership: list, add, remove and promote members.

    \b
    Example:
        raftkv member list -w table
    """


@member.command("list")
def list_() -> None:
    """List the members.

    \b
    Examples:
        raftkv member list
        raftkv member list -w table
    """
    fmt = write_out()
    r = member_list()
    if fmt == output.JSON:
        output.echo_json(output.pb_to_json(r))
    elif fmt == output.TABLE:
        click.echo(output.boxed_table(MEMBER_HEADER, member_rows(r.members)))
    else:
        for row in member_rows(r.members):
            click.echo(", ".join(row))


def _urls(value: str) -> list[str]:
    urls = [u.strip() for u in value.split(",") if u.strip()]
    for url in urls:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname or not parsed.port:
            raise click.BadParameter(f"{url!r} is not a URL like http://127.0.0.1:2380",
                                     param_hint="--peer-urls")
    return urls


@member.command("add")
@click.argument("name")
@click.option("--peer-urls", required=True, help="The new member's peer URLs, comma-separated.")
@click.option("--learner", is_flag=True, help="Add it as a learner (it does not vote until promoted).")
def add(name: str, peer_urls: str, learner: bool) -> None:
    """Add a member NAME, then print how to start it.

    \b
    Example:
        raftkv member add m3 --peer-urls http://127.0.0.1:2386
    """
    fmt = write_out((output.SIMPLE, output.JSON))
    urls = _urls(peer_urls)
    r = rpc.call(client(), "Cluster", "MemberAdd", rpc_pb2.MemberAddRequest(peerURLs=urls, isLearner=learner))
    if fmt == output.JSON:
        output.echo_json(output.pb_to_json(r))
        return
    click.echo(f"Member {r.member.ID:16x} added to cluster {r.header.cluster_id:16x}")
    parts = []
    for m in r.members:
        for url in m.peerURLs:
            parts.append(f"{name if m.ID == r.member.ID else m.name}={url}")
    initial = ",".join(parts)
    peer = urls[0]
    host = urlparse(peer).hostname
    click.echo("")
    click.echo("Start it with:")
    click.echo(f"  raftkv serve --name {name} --initial-cluster-state existing \\\n"
               f"    --initial-cluster {initial} \\\n"
               f"    --listen-peer-urls {peer} --initial-advertise-peer-urls {','.join(urls)} \\\n"
               f"    --listen-client-urls http://{host}:CLIENT-PORT")


@member.command("remove")
@click.argument("member_id", metavar="ID", type=MemberID())
def remove(member_id: int) -> None:
    """Remove the member with ID (hex, as `member list` shows it).

    \b
    Example:
        raftkv member remove 8e9e05c52164694d
    """
    fmt = write_out((output.SIMPLE, output.JSON))
    r = rpc.call(client(), "Cluster", "MemberRemove", rpc_pb2.MemberRemoveRequest(ID=member_id))
    if fmt == output.JSON:
        output.echo_json(output.pb_to_json(r))
    else:
        click.echo(f"Member {member_id:16x} removed from cluster {r.header.cluster_id:16x}")


@member.command("promote")
@click.argument("member_id", metavar="ID", type=MemberID())
def promote(member_id: int) -> None:
    """Promote a learner to a voting member.

    \b
    Example:
        raftkv member promote 8e9e05c52164694d
    """
    fmt = write_out((output.SIMPLE, output.JSON))
    r = rpc.call(client(), "Cluster", "MemberPromote", rpc_pb2.MemberPromoteRequest(ID=member_id))
    if fmt == output.JSON:
        output.echo_json(output.pb_to_json(r))
    else:
        click.echo(f"Member {member_id:16x} promoted in cluster {r.header.cluster_id:16x}")


# ---- endpoints --------------------------------------------------------------------------

def target_endpoints(endpoints_only: bool) -> list[str]:
    """Every member's first client URL (or the --endpoints as given)."""
    s = settings()
    if endpoints_only:
        return list(s.endpoints)
    members = member_list().members
    found = [m.clientURLs[0] for m in members if m.clientURLs]
    return found or list(s.endpoints)


def one_client(endpoint: str, s):
    from raftkv.client.remote import Client

    user, password = s.credentials_of_user()
    return Client([endpoint], timeout=s.command_timeout, credentials=s.credentials(), user=user, password=password)


@dataclass
class EndpointResult:
    endpoint: str
    status: rpc_pb2.StatusResponse | None = None
    error: str = ""
    took: float = 0.0


def _status(endpoint: str, s) -> EndpointResult:
    try:
        with one_client(endpoint, s) as c:
            return EndpointResult(endpoint, rpc.call(c, "Maintenance", "Status", rpc_pb2.StatusRequest()))
    except RaftKVError as e:
        return EndpointResult(endpoint, error=_short_error(e))


def _health(endpoint: str, s) -> EndpointResult:
    """etcdctl's check: a linearizable read of the key "health" commits through the leader."""
    start = time.monotonic()
    try:
        with one_client(endpoint, s) as c:
            rpc.call(c, "KV", "Range", request_to_pb(ops.get(b"health")))
            return EndpointResult(endpoint, took=time.monotonic() - start)
    except RaftKVError as e:
        return EndpointResult(endpoint, error=_short_error(e), took=time.monotonic() - start)


def _short_error(e: RaftKVError) -> str:
    text = str(e)
    if "failed to connect" in text.lower() or "connection refused" in text.lower():
        return "unreachable (connection refused)"
    if text.lower().startswith("deadline exceeded"):
        return "context deadline exceeded"
    return text.splitlines()[0] if text else type(e).__name__


def each(fn, endpoints: list[str]) -> list[EndpointResult]:
    """``fn(endpoint, settings)`` for every endpoint at once (threads have no click context)."""
    s = settings()
    with ThreadPoolExecutor(max_workers=max(1, len(endpoints))) as pool:
        return list(pool.map(lambda e: fn(e, s), endpoints))


STATUS_HEADER = ["ENDPOINT", "ID", "VERSION", "DB SIZE", "IS LEADER", "IS LEARNER", "RAFT TERM",
                 "RAFT INDEX", "RAFT APPLIED INDEX", "ERRORS"]


def status_row(result: EndpointResult) -> list[str]:
    st = result.status
    return [result.endpoint, f"{st.header.member_id:x}", st.version, output.humanize_bytes(st.dbSize),
            str(st.leader == st.header.member_id).lower(), str(st.isLearner).lower(),
            str(st.raftTerm), str(st.raftIndex), str(st.raftAppliedIndex), ", ".join(st.errors)]


@group("endpoint")
def endpoint() -> None:
    """The health and status of each member.

    \b
    Example:
        raftkv endpoint status -w table
    """


_only = click.option("--endpoints-only", is_flag=True,
                     help="Only the --endpoints given, not every member of the cluster.")


@endpoint.command("status")
@_only
def status(endpoints_only: bool) -> None:
    """Status of every member: ID, version, leader, Raft term and index.

    \b
    Examples:
        raftkv endpoint status
        raftkv endpoint status -w table
    """
    fmt = write_out()
    results = each(_status, target_endpoints(endpoints_only))
    good = [r for r in results if r.status is not None]
    for r in results:
        if r.status is None:
            click.echo(f"Failed to get the status of endpoint {r.endpoint} ({r.error})", err=True)
    if fmt == output.JSON:
        output.echo_json([{"Endpoint": r.endpoint, "Status": output.pb_to_json(r.status)} for r in good])
    elif fmt == output.TABLE:
        click.echo(output.boxed_table(STATUS_HEADER, [status_row(r) for r in good]))
    else:
        for r in good:
            click.echo(", ".join(status_row(r)))
    if len(good) != len(results):
        raise click.exceptions.Exit(1)


@endpoint.command("health")
@_only
def health(endpoints_only: bool) -> None:
    """Whether every member can commit a read through the leader.

    \b
    Examples:
        raftkv endpoint health
        raftkv endpoint health -w table
    """
    fmt = write_out()
    results = each(_health, target_endpoints(endpoints_only))
    if fmt == output.JSON:
        output.echo_json([{"endpoint": r.endpoint, "health": not r.error,
                           "took": output.go_duration(r.took), **({"error": r.error} if r.error else {})}
                          for r in results])
    elif fmt == output.TABLE:
        rows = [[r.endpoint, str(not r.error).lower(), output.go_duration(r.took), r.error] for r in results]
        click.echo(output.boxed_table(["ENDPOINT", "HEALTH", "TOOK", "ERROR"], rows))
    else:
        for r in results:
            if r.error:
                click.echo(f"{r.endpoint} is unhealthy: failed to commit proposal: {r.error}", err=True)
            else:
                click.echo(f"{r.endpoint} is healthy: successfully committed proposal: "
                           f"took = {output.go_duration(r.took)}")
    if any(r.error for r in results):
        raise CLIError("unhealthy cluster — see the members above; `raftkv endpoint status` shows "
                       "which one leads")
