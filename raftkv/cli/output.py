"""Formatting: etcdctl's simple/json/table shapes, kubectl's plain tables.

etcdctl prints its JSON with Go's encoding/json over the gogoproto structs:
proto field names, defaults left out, bytes in base64, 64-bit numbers as
numbers. ``pb_to_json`` does the same for our generated messages, so
``raftkv get -w json`` and ``etcdctl get -w json`` print the same text.
"""

from __future__ import annotations

import base64
import json
import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click
from google.protobuf.descriptor import FieldDescriptor

SIMPLE, JSON, TABLE = "simple", "json", "table"
FORMATS = (SIMPLE, JSON, TABLE)


# ---- JSON as etcdctl writes it ------------------------------------------------

def pb_to_json(message: Any) -> dict[str, Any]:
    """A protobuf message as Go's encoding/json writes the matching gogoproto
    struct: set fields only, in field-number order, under their proto names."""
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        oneof = field.containing_oneof
        if oneof is not None and field.message_type is not None:
            # Go's struct for a oneof: {"Response": {"ResponsePut": {...}}}
            wrapper = "".join(part.title() for part in field.name.split("_"))
            out[oneof.name.title()] = {wrapper: pb_to_json(value)}
            continue
        out[field.name] = _value(field, value)
    return out


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.is_repeated:
        return [_scalar(field, v) for v in value]
    return _scalar(field, value)


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return pb_to_json(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value


def header_json(header: Any) -> dict[str, Any]:
    """A ResponseHeader, as embedded (flattened) in clientv3's lease responses."""
    return pb_to_json(header)


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def echo_json(data: Any) -> None:
    click.echo(dumps(data))


# ---- etcdctl's simple output -----------------------------------------------------

def hex_bytes(data: bytes) -> bytes:
    """etcdctl --hex: every byte as \\xNN."""
    return "".join(f"\\x{b:02x}" for b in data).encode()


def echo_bytes(data: bytes, hex_: bool = False) -> None:
    """A key or value as it is (raw bytes, newline-terminated), as etcdctl prints."""
    click.echo(hex_bytes(data) if hex_ else data)


def echo_kv(kv: Any, *, hex_: bool = False, value_only: bool = False) -> None:
    if not value_only:
        echo_bytes(kv.key, hex_)
    echo_bytes(kv.value, hex_)


def humanize_bytes(size: int) -> str:
    """go-humanize's Bytes, as etcdctl shows sizes ("0 B", "544 B", "20 kB")."""
    if size < 10:
        return f"{size} B"
    sizes = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    exponent = min(int(math.floor(math.log(size) / math.log(1000))), len(sizes) - 1)
    value = math.floor(size / 1000 ** exponent * 10 + 0.5) / 10
    return (f"{value:.1f} {sizes[exponent]}" if value < 10 else f"{value:.0f} {sizes[exponent]}")


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration prints it ("1.469096ms", "2.5s")."""
    ns = int(round(seconds * 1e9))
    if ns == 0:
        return "0s"
    if ns < 1000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return _trim(f"{ns / 1e3:.3f}") + "µs"
    if ns < 1_000_000_000:
        return _trim(f"{ns / 1e6:.6f}") + "ms"
    return _trim(f"{ns / 1e9:.9f}") + "s"


def _trim(number: str) -> str:
    return number.rstrip("0").rstrip(".") if "." in number else number


# ---- tables ----------------------------------------------------------------------

def _width(text: str) -> int:
    return click.unstyle(text).__len__()


def boxed_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """etcdctl's table (olekukonko/tablewriter, right-aligned cells, centred
    headers):

        +------+---------+
        |  ID  | STATUS  |
        +------+---------+
        | 8e9e | started |
        +------+---------+
    """
    rows = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [_width(r[i]) for r in rows]) for i, h in enumerate(header)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def centre(text: str, width: int) -> str:
        # tablewriter pads the extra space on the right when it is odd
        gap = width - len(text)
        left = gap // 2
        return " " * left + text + " " * (gap - left)

    out = [line, "| " + " | ".join(centre(h, w) for h, w in zip(header, widths)) + " |", line]
    for row in rows:
        out.append("| " + " | ".join(" " * (w - _width(c)) + c for c, w in zip(row, widths)) + " |")
    if rows:
        out.append(line)
    return "\n".join(out)


def plain_table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, header_style: bool = True) -> str:
    """kubectl's table: left-aligned columns three spaces apart, no borders."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [_width(r[i]) for r in rows]) for i, h in enumerate(header)]

    def render(cells: Sequence[str]) -> str:
        parts = []
        for i, (cell, width) in enumerate(zip(cells, widths)):
            parts.append(cell if i == len(cells) - 1 else cell + " " * (width - _width(cell) + 3))
        return "".join(parts).rstrip()

    head = render(list(header))
    lines = [click.style(head, bold=True) if header_style else head]
    lines.extend(render(row) for row in rows)
    return "\n".join(lines)


def table_row(header_widths: Sequence[int], cells: Sequence[str]) -> str:
    """One row aligned to widths already chosen (kubectl get --watch)."""
    parts = []
    for i, (cell, width) in enumerate(zip(cells, header_widths)):
        parts.append(cell if i == len(cells) - 1 else cell.ljust(width) + "   ")
    return "".join(parts).rstrip()


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress(length: int | None, label: str):
    """Progress on stderr when it is a terminal (silent otherwise): a bar when
    ``length`` (items) is known, a running byte count when it is None."""
    if not stderr_is_terminal() or length == 0:
        return _NoProgress()
    if length is None:
        return _ByteProgress(label)
    return click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True)


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int, current_item: Any = None) -> None:
        return None


class _ByteProgress(_NoProgress):
    def __init__(self, label: str) -> None:
        self.label = label
        self.done = 0
        self._shown = 0.0

    def update(self, n: int, current_item: Any = None) -> None:
        import time

        self.done += n
        now = time.monotonic()
        if now - self._shown > 0.1:
            self._shown = now
            click.echo(f"\r{self.label}: {humanize_bytes(self.done)}", nl=False, err=True)

    def __exit__(self, *exc: object) -> None:
        click.echo(f"\r{self.label}: {humanize_bytes(self.done)}", err=True)
