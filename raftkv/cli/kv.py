"""Key-value verbs, as etcdctl has them: put, get, del, txn, compact."""

from __future__ import annotations

import sys

import click

from raftkv.cli import output, rpc
from raftkv.cli.context import client, command, settings, write_out
from raftkv.cli.txnparse import (
    _SORT_ORDERS,
    _SORT_TARGETS,
    Prompted,
    _lease_id,
    check_span,
    parse_txn,
    sort_options,
)
from raftkv.client import ops
from raftkv.mvcc.requests import CompactionRequest
from raftkv.wire import request_to_pb

# ---- printing responses as etcdctl's simple printer does ----------------------------------


def print_range(response, *, value_only: bool = False) -> None:
    hex_ = settings().hex
    for kv in response.kvs:
        output.echo_kv(kv, hex_=hex_, value_only=value_only)


def print_put(response) -> None:
    click.echo("OK")
    if response.HasField("prev_kv"):
        output.echo_kv(response.prev_kv, hex_=settings().hex)


def print_delete(response) -> None:
    click.echo(str(response.deleted))
    for kv in response.prev_kvs:
        output.echo_kv(kv, hex_=settings().hex)


def print_txn(response) -> None:
    click.echo("SUCCESS" if response.succeeded else "FAILURE")
    for op in response.responses:
        click.echo("")
        kind = op.WhichOneof("response")
        if kind == "response_range":
            print_range(op.response_range)
        elif kind == "response_put":
            print_put(op.response_put)
        elif kind == "response_delete_range":
            print_delete(op.response_delete_range)
        elif kind == "response_txn":
            print_txn(op.response_txn)


def kv_table(response) -> str:
    def text(data: bytes) -> str:
        return output.hex_bytes(data).decode() if settings().hex else data.decode(errors="replace")

    rows = [[text(kv.key), text(kv.value), kv.create_revision, kv.mod_revision, kv.version,
             f"{kv.lease:x}" if kv.lease else ""] for kv in response.kvs]
    return output.boxed_table(["KEY", "VALUE", "CREATE REVISION", "MOD REVISION", "VERSION", "LEASE"],
                              rows)


def _bytes(text: str) -> bytes:
    return text.encode(errors="surrogateescape")


def execute(request) -> object:
    """Send one KV request (range, put, delete, txn, compaction); the raw response."""
    method = {"RangeRequest": "Range", "PutRequest": "Put", "DeleteRangeRequest": "DeleteRange",
              "TxnRequest": "Txn", "CompactionRequest": "Compact"}[type(request).__name__]
    # a put or delete repeated ends in the same state; a txn or compaction may not
    return rpc.call(client(), "KV", method, request_to_pb(request),
                    idempotent=method in ("Range", "Put", "DeleteRange"))


def register(cli: click.Group) -> None:
    for verb in (put, get, delete, txn, compact):
        cli.add_command(verb)


@command("put")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--lease", default=None, metavar="ID", help="Attach the key to this lease (hex ID).")
@click.option("--prev-kv", is_flag=True, help="Print the previous key-value.")
@click.option("--ignore-value", is_flag=True, help="Keep the current value (update the lease only).")
@click.option("--ignore-lease", is_flag=True, help="Keep the current lease (update the value only).")
def put(key: str, value: str | None, lease: str | None, prev_kv: bool, ignore_value: bool,
        ignore_lease: bool) -> None:
    """Put KEY = VALUE (VALUE is read from stdin when not given).

    \b
    Examples:
        raftkv put greeting hello
        raftkv put config < config.json
        raftkv put --lease 694d77aa9e38260f session alive
        raftkv put -- key -value-starting-with-a-dash
    """
    fmt = write_out((output.SIMPLE, output.JSON))
    if value is None and not ignore_value:
        if sys.stdin.isatty():
            raise click.UsageError("put needs a VALUE argument, or the value on stdin")
        data = sys.stdin.buffer.read()
    else:
        data = _bytes(value or "")
    try:
        lease_id = _lease_id(lease)
    except click.BadParameter as e:
        raise click.UsageError(e.message) from None
    response = execute(ops.put(_bytes(key), data, lease=lease_id, prev_kv=prev_kv,
                               ignore_value=ignore_value, ignore_lease=ignore_lease))
    if fmt == output.JSON:
        output.echo_json(output.pb_to_json(response))
    else:
        print_put(response)


@command("get")
@click.argument("key")
@click.argument("range_end", required=False)
@click.option("--prefix", is_flag=True, help="Every key starting with KEY.")
@click.option("--from-key", is_flag=True, help="Every key >= KEY (byte order).")
@click.option("--rev", type=int, default=0, help="Read at this revision.")
@click.option("--limit", type=int, default=0, help="At most this many keys.")
@click.option("--sort-by", type=click.Choice(_SORT_TARGETS, case_sensitive=False), default=None,
              help="Sort target.")
@click.option("--order", type=click.Choice(_SORT_ORDERS, case_sensitive=False), default=None,
              help="Sort order (ASCEND by default once --sort-by is given).")
@click.option("--keys-only", is_flag=True, help="Keys only, no values.")
@click.option("--count-only", is_flag=True, help="Only the number of keys (-w json shows it).")
@click.option("--print-value-only", is_flag=True, help="Values only (simple output).")
@click.option("--consistency", type=click.Choice(["l", "s"]), default="l", show_default=True,
              help="Linearizable (l) or serializable (s: this member's view, no leader needed).")
def get(key: str, range_end: str | None, prefix: bool, from_key: bool, rev: int, limit: int,
        sort_by: str | None, order: str | None, keys_only: bool, count_only: bool,
        print_value_only: bool, consistency: str) -> None:
    """Get KEY, or the keys in [KEY, RANGE_END).

    \b
    Examples:
        raftkv get greeting
        raftkv get app/ --prefix --keys-only
        raftkv get "" --prefix --sort-by MODIFY --order DESCEND --limit 10
        raftkv get greeting --rev 5 -w json
    """
    fmt = write_out()
    check_span(range_end, prefix, from_key)
    target, sort_order = sort_options(sort_by, order)
    response = execute(ops.get(
        _bytes(key), _bytes(range_end) if range_end is not None else None, prefix=prefix,
        from_key=from_key, limit=limit, revision=rev, sort_target=target, sort_order=sort_order,
        keys_only=keys_only, count_only=count_only, serializable=consistency == "s"))
    if fmt == output.JSON:
        output.echo_json(output.pb_to_json(response))
    elif fmt == output.TABLE:
        click.echo(kv_table(response))
    elif count_only:
        click.echo(str(response.count))
    else:
        print_range(response, value_only=print_value_only)


@command("del")
@click.argument("key")
@click.argument("range_end", required=False)
@click.option("--prefix", is_flag=True, help="Every key starting with KEY.")
@click.option("--from-key", is_flag=True, help="Every key >= KEY (byte order).")
@click.option("--prev-kv", is_flag=True, help="Print the deleted key-values.")
def delete(key: str, range_end: str | None, prefix: bool, from_key: bool, prev_kv: bool) -> None:
    """Delete KEY, or the keys in [KEY, RANGE_END); prints how many went.

    \b
    Examples:
        raftkv del greeting
        raftkv del app/ --prefix --prev-kv
    """
    fmt = write_out((output.SIMPLE, output.JSON))
    check_span(range_end, prefix, from_key)
    response = execute(ops.delete(_bytes(key), _bytes(range_end) if range_end is not None else None,
                                  prefix=prefix, from_key=from_key, prev_kv=prev_kv))
    if fmt == output.JSON:
        output.echo_json(output.pb_to_json(response))
    else:
        print_delete(response)


@command("txn")
@click.option("-f", "--file", "path", type=click.File("r"), default=None,
              help="Read the txn from FILE instead of stdin.")
@click.option("-i", "--interactive", is_flag=True, help="Prompt for each section.")
def txn(path, interactive: bool) -> None:
    """Run a transaction written in etcdctl's syntax: compares, an empty line,
    requests if they all hold, an empty line, requests otherwise, an empty line.

    A compare is TARGET("key") OP "value", TARGET one of ver, create, mod,
    value, lease; OP one of =, !=, <, >. Requests are put, get and del with
    their flags.

    \b
    Example:
        printf '%s\\n' 'mod("leader") = "0"' '' 'put leader me' '' 'get leader' '' | raftkv txn
    """
    fmt = write_out((output.SIMPLE, output.JSON))
    if path is not None:
        lines = path
    elif interactive:
        lines = Prompted(sys.stdin)
    else:
        lines = sys.stdin
    compares, success, failure = parse_txn(lines)
    response = execute(ops.txn(compares, success, failure))
    if fmt == output.JSON:
        output.echo_json(output.pb_to_json(response))
    else:
        print_txn(response)


@command("compact")
@click.argument("revision", type=int)
@click.option("--physical", is_flag=True, help="Wait until the compaction is applied.")
def compact(revision: int, physical: bool) -> None:
    """Forget the history below REVISION.

    \b
    Example:
        raftkv compact 1234
    """
    write_out((output.SIMPLE, output.JSON))
    execute(CompactionRequest(revision, physical))
    click.echo(f"compacted revision {revision}")  # etcdctl prints this for -w json too
