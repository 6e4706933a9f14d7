"""etcdctl's txn syntax.

    compares          one per line, then an empty line
    success requests  one per line (put, get, del with their flags), then an empty line
    failure requests  one per line, then an empty line (or the end of input)

A compare is ``TARGET("key") OP "value"``: TARGET is ver/version, c/create,
m/mod, val/value or lease; OP is =, !=, < or >; key and value are Go-quoted
strings (the numbers too: ``mod("k") > "0"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import click

from raftkv.client import ops
from raftkv.mvcc.requests import Compare, RequestOp


class TxnSyntaxError(click.UsageError):
    """The txn text is malformed (a usage error: exit code 2)."""


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", "'": "'", '"': '"'}


def go_unquote(token: str) -> bytes:
    """A Go string literal ("..." with escapes, or `raw`) to bytes."""
    if len(token) >= 2 and token[0] == token[-1] == "`":
        return token[1:-1].encode()
    if len(token) < 2 or token[0] != '"' or token[-1] != '"':
        raise ValueError(f"not a quoted string: {token}")
    body, out, i = token[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError("a backslash ends the string")
        esc = body[i + 1]
        if esc in _ESCAPES:
            out += _ESCAPES[esc].encode()
            i += 2
        elif esc == "x":
            out.append(int(body[i + 2:i + 4], 16))
            i += 4
        elif esc in "uU":
            size = 4 if esc == "u" else 8
            out += chr(int(body[i + 2:i + 2 + size], 16)).encode()
            i += 2 + size
        elif esc in "01234567":
            out.append(int(body[i + 1:i + 4], 8))
            i += 4
        else:
            raise ValueError(f"unknown escape \\{esc}")
    return bytes(out)


_QUOTED = r'"(?:[^"\\]|\\.)*"|`[^`]*`'
_COMPARE = re.compile(r"^\s*(\w+)\(\s*(" + _QUOTED + r")\s*\)\s*(!=|=|<|>)\s*(" + _QUOTED + r")\s*$")
_TOKEN = re.compile(_QUOTED + r"|\S+")

_INT_TARGETS = {"ver": ops.version, "version": ops.version, "c": ops.create_revision,
                "create": ops.create_revision, "m": ops.mod_revision, "mod": ops.mod_revision,
                "lease": ops.lease}


def parse_compare(line: str) -> Compare:
    match = _COMPARE.match(line)
    if not match:
        raise TxnSyntaxError(f"malformed comparison: {line}")
    target, key_token, op, value_token = match.groups()
    try:
        key, value = go_unquote(key_token), go_unquote(value_token)
    except ValueError as e:
        raise TxnSyntaxError(f"malformed comparison: {line} ({e})") from None
    if target in ("val", "value"):
        built = ops.value(key)
        operand: bytes | int = value
    elif target in _INT_TARGETS:
        built = _INT_TARGETS[target](key)
        try:
            operand = int(value.decode(), 16 if target == "lease" else 10)
        except ValueError:
            raise TxnSyntaxError(f"invalid txn compare request: {line}") from None
    else:
        raise TxnSyntaxError(f"malformed comparison: {line} (unknown target {target})")
    return {"=": built.__eq__, "!=": built.__ne__, "<": built.__lt__, ">": built.__gt__}[op](operand)


def split_args(line: str) -> list[str]:
    """Shell-like words; quoted words are Go strings (etcdctl's argify)."""
    words = []
    for token in _TOKEN.findall(line):
        if token[0] in '"`' and len(token) >= 2 and token[-1] == token[0]:
            try:
                words.append(go_unquote(token).decode(errors="surrogateescape"))
            except ValueError as e:
                raise TxnSyntaxError(f"invalid txn request: {line} ({e})") from None
        else:
            words.append(token)
    return words


def _lease_id(value: str | None) -> int:
    if not value:
        return 0
    try:
        return int(value, 16)
    except ValueError:
        raise click.BadParameter(f"bad lease ID ({value}), expecting ID in Hex") from None


_SORT_TARGETS = ("CREATE", "KEY", "MODIFY", "VALUE", "VERSION")
_SORT_ORDERS = ("ASCEND", "DESCEND")


def sort_options(sort_by: str | None, order: str | None) -> tuple[str, str]:
    """(sort_target, sort_order) as clientv3's WithSort sets them."""
    target = {"MODIFY": "MOD"}.get((sort_by or "KEY").upper(), (sort_by or "KEY").upper())
    sort_order = (order or "NONE").upper()
    if target == "KEY" and sort_order == "ASCEND":
        sort_order = "NONE"  # keys come sorted ascending anyway
    return target, sort_order


# click commands that only parse a txn line's arguments

@click.command("put")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--lease", default=None)
@click.option("--prev-kv", is_flag=True)
@click.option("--ignore-value", is_flag=True)
@click.option("--ignore-lease", is_flag=True)
def _put(key: str, value: str | None, lease: str | None, prev_kv: bool, ignore_value: bool,
         ignore_lease: bool) -> RequestOp:
    if value is None and not ignore_value:
        raise click.UsageError("put command needs 1 argument and input from stdin or 2 arguments")
    return ops.put(_bytes(key), _bytes(value or ""), lease=_lease_id(lease), prev_kv=prev_kv,
                   ignore_value=ignore_value, ignore_lease=ignore_lease)


@click.command("get")
@click.argument("key")
@click.argument("range_end", required=False)
@click.option("--prefix", is_flag=True)
@click.option("--from-key", is_flag=True)
@click.option("--limit", type=int, default=0)
@click.option("--rev", type=int, default=0)
@click.option("--sort-by", type=click.Choice(_SORT_TARGETS, case_sensitive=False), default=None)
@click.option("--order", type=click.Choice(_SORT_ORDERS, case_sensitive=False), default=None)
@click.option("--keys-only", is_flag=True)
@click.option("--count-only", is_flag=True)
@click.option("--consistency", type=click.Choice(["l", "s"]), default="l")
def _get(key: str, range_end: str | None, prefix: bool, from_key: bool, limit: int, rev: int,
         sort_by: str | None, order: str | None, keys_only: bool, count_only: bool,
         consistency: str) -> RequestOp:
    check_span(range_end, prefix, from_key)
    target, sort_order = sort_options(sort_by, order)
    return ops.get(_bytes(key), _bytes(range_end) if range_end is not None else None, prefix=prefix,
                   from_key=from_key, limit=limit, revision=rev, sort_target=target,
                   sort_order=sort_order, keys_only=keys_only, count_only=count_only,
                   serializable=consistency == "s")


@click.command("del")
@click.argument("key")
@click.argument("range_end", required=False)
@click.option("--prefix", is_flag=True)
@click.option("--from-key", is_flag=True)
@click.option("--prev-kv", is_flag=True)
def _del(key: str, range_end: str | None, prefix: bool, from_key: bool, prev_kv: bool) -> RequestOp:
    check_span(range_end, prefix, from_key)
    return ops.delete(_bytes(key), _bytes(range_end) if range_end is not None else None,
                      prefix=prefix, from_key=from_key, prev_kv=prev_kv)


_OPS = {"put": _put, "get": _get, "del": _del, "delete": _del}


def check_span(range_end: str | None, prefix: bool, from_key: bool) -> None:
    if prefix and from_key:
        raise click.UsageError("`--prefix` and `--from-key` cannot be set at the same time, choose one")
    if range_end is not None and prefix:
        raise click.UsageError("too many arguments, only accept one argument when `--prefix` is set")
    if range_end is not None and from_key:
        raise click.UsageError("too many arguments, only accept one argument when `--from-key` is set")


def _bytes(text: str) -> bytes:
    return text.encode(errors="surrogateescape")


def parse_request(line: str) -> RequestOp:
    words = split_args(line)
    if not words:
        raise TxnSyntaxError("empty request")
    command = _OPS.get(words[0])
    if command is None:
        raise TxnSyntaxError(f"invalid txn request: {line} (a request is get, put or del)")
    try:
        ctx = command.make_context(words[0], words[1:], resilient_parsing=False)
        with ctx:
            return command.invoke(ctx)
    except click.exceptions.Exit:
        raise TxnSyntaxError(f"invalid txn request: {line}") from None
    except click.ClickException as e:
        raise TxnSyntaxError(f"invalid txn request: {line} ({e.format_message()})") from None


def _sections(lines: Iterable[str]) -> Iterator[list[str]]:
    section: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line.strip():
            yield section
            section = []
        else:
            section.append(line)
    yield section


def parse_txn(lines: Iterable[str]) -> tuple[list[Compare], list[RequestOp], list[RequestOp]]:
    """(compares, success, failure) from etcdctl's txn text. The end of input
    ends the section it falls in; sections after it are empty."""
    sections = _sections(lines)
    parts: list[list[str]] = []
    for section in sections:
        parts.append(section)
        if len(parts) == 3:
            break
    while len(parts) < 3:
        parts.append([])
    compares = [parse_compare(line) for line in parts[0]]
    success = [parse_request(line) for line in parts[1]]
    failure = [parse_request(line) for line in parts[2]]
    return compares, success, failure


class Prompted:
    """Read the three sections from a terminal, prompting as ``etcdctl txn -i``."""

    PROMPTS = ("compares:", "success requests (get, put, del):", "failure requests (get, put, del):")

    def __init__(self, stream) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[str]:
        for prompt in self.PROMPTS:
            click.echo(prompt)
            while True:
                line = self._stream.readline()
                if not line:
                    return
                yield line
                if not line.strip():
                    break
