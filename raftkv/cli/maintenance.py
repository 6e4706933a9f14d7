"""``raftkv alarm list|disarm`` and ``raftkv defrag``, as etcdctl prints them."""

from __future__ import annotations

import click

from raftkv._proto.etcdserverpb import rpc_pb2
from raftkv.cli import output, rpc
from raftkv.cli.context import client, group, write_out
from raftkv.cli.member import each, one_client, target_endpoints
from raftkv.errors import RaftKVError
from raftkv.mvcc.requests import AlarmMember, AlarmType


def register(cli: click.Group) -> None:
    cli.add_command(alarm)
    cli.add_command(defrag)


@group("alarm")
def alarm() -> None:
    """Alarms: NOSPACE is raised when a member's store reaches --quota-backend-bytes.

    \b
    Example, after deleting what is not needed:
        raftkv compact <revision> && raftkv defrag --cluster && raftkv alarm disarm
    """


def _print_alarms(response: rpc_pb2.AlarmResponse) -> None:
    if write_out((output.SIMPLE, output.JSON)) == output.JSON:
        output.echo_json(output.pb_to_json(response))
        return
    for m in response.alarms:
        click.echo(str(AlarmMember(m.memberID, AlarmType(m.alarm))))


@alarm.command("list")
def list_() -> None:
    """The alarms raised in the cluster.

    \b
    Example:
        raftkv alarm list
    """
    _print_alarms(rpc.call(client(), "Maintenance", "Alarm", rpc_pb2.AlarmRequest(), idempotent=True))


@alarm.command("disarm")
def disarm() -> None:
    """Clear every alarm raised; prints the alarms cleared.

    \b
    Example:
        raftkv alarm disarm
    """
    c = client()
    raised = rpc.call(c, "Maintenance", "Alarm", rpc_pb2.AlarmRequest(), idempotent=True)
    cleared = rpc_pb2.AlarmResponse()
    for m in raised.alarms:
        request = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.DEACTIVATE, memberID=m.memberID, alarm=m.alarm)
        cleared.alarms.extend(rpc.call(c, "Maintenance", "Alarm", request).alarms)
    _print_alarms(cleared)


def _defragment(endpoint: str, s) -> str:
    try:
        with one_client(endpoint, s) as c:
            c.defragment()
        return ""
    except RaftKVError as e:
        return str(e)


@click.command("defrag")
@click.option("--cluster", is_flag=True, help="Every member of the cluster, not only the --endpoints.")
def defrag(cluster: bool) -> None:
    """Bring each member's size (DB SIZE in endpoint status) down to what is in use.

    \b
    Example:
        raftkv defrag --cluster
    """
    endpoints = target_endpoints(endpoints_only=not cluster)
    failed = False
    for endpoint, error in zip(endpoints, each(_defragment, endpoints)):
        if error:
            failed = True
            click.echo(f"Failed to defragment etcd member[{endpoint}] ({error})", err=True)
        else:
            click.echo(f"Finished defragmenting etcd member[{endpoint}]")
    if failed:
        raise click.exceptions.Exit(1)
