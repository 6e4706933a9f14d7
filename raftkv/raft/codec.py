"""Plain values to bytes and back, for peer messages and snapshot records.

msgpack carries exactly what a Raft message holds (None, bools, integers,
floats, strings, bytes, lists and string-keyed maps of those) and nothing
that names a class or a function, so decoding bytes from a socket or a file
can build values but never run code. Tuples come back as lists.
"""

from __future__ import annotations

import msgpack


class DecodeError(ValueError):
    """Bytes that are not one well-formed value within the limits."""


def encode(value: object) -> bytes:
    """Raises TypeError for anything that is not a plain value."""
    return msgpack.packb(value, use_bin_type=True, strict_types=False, datetime=False)


def decode(data: bytes, max_size: int | None = None) -> object:
    """One value, exactly filling ``data``. Containers and strings are
    bounded by ``max_size`` (default: the length of ``data``), so a few bytes
    claiming a huge array cannot make the decoder allocate it."""
    limit = len(data) if max_size is None else max_size
    try:
        return msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True, timestamp=0,
            max_bin_len=limit, max_str_len=limit, max_array_len=limit, max_map_len=limit,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise DecodeError(f"undecodable: {e}") from None
