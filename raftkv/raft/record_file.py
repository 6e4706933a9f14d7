"""A file of checksummed records, written in one pass and read back only if whole.

    magic     a line naming the format
    records   <u32 length><u32 crc32 of the payload> payload (a codec value)
    end       a last record ["end", <records before it>, <crc32 of all their payloads>]

A reader checks every record's checksum as it goes and, at the end, the
count and the running checksum, so a truncated, reordered or damaged file is
refused with the path and the byte offset where it went wrong; nothing in it
is decoded into more than plain values.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator

from raftkv.raft import codec

_FRAME = struct.Struct("<II")
_BUFFER = 1 << 20


class RecordFileError(ValueError):
    """A damaged or foreign record file; the message names the file and the offset."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"{path}: {reason} at byte {offset}")
        self.path = path
        self.offset = offset
        self.reason = reason


class RecordWriter:
    """Writes records to an open binary file; ``finish`` writes the end record."""

    def __init__(self, file, magic: bytes) -> None:
        self._file = file
        self._count = 0
        self._crc = 0
        file.write(magic)

    def write(self, record: object) -> None:
        payload = codec.encode(record)
        crc = zlib.crc32(payload)
        self._file.write(_FRAME.pack(len(payload), crc))
        self._file.write(payload)
        self._count += 1
        self._crc = zlib.crc32(payload, self._crc)

    def finish(self) -> None:
        payload = codec.encode(["end", self._count, self._crc])
        self._file.write(_FRAME.pack(len(payload), zlib.crc32(payload)))
        self._file.write(payload)


def read_records(path: str, magic: bytes | tuple[bytes, ...]) -> Iterator[object]:
    """Every record of the file but the end record, in order. Raises
    RecordFileError (after yielding the good records before it) when the
    file is damaged, cut short or not of this format. ``magic`` may name
    several formats (versions) of one length that the caller can read."""
    magics = (magic,) if isinstance(magic, bytes) else magic
    with open(path, "rb", buffering=_BUFFER) as f:
        size = os.fstat(f.fileno()).st_size
        if f.read(len(magics[0])) not in magics:
            raise RecordFileError(path, 0, "not a file of this format (wrong magic)")
        offset = len(magics[0])
        count = 0
        running = 0
        while True:
            frame = f.read(_FRAME.size)
            if len(frame) < _FRAME.size:
                raise RecordFileError(path, offset, "cut short: the end record is missing")
            length, crc = _FRAME.unpack(frame)
            if length > size - offset - _FRAME.size:
                raise RecordFileError(path, offset, f"a record claims {length} bytes, more than the file holds")
            payload = f.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                raise RecordFileError(path, offset, "checksum mismatch")
            try:
                record = codec.decode(payload)
            except codec.DecodeError as e:
                raise RecordFileError(path, offset, str(e)) from None
            if isinstance(record, list) and record[:1] == ["end"]:
                if record[1:] != [count, running]:
                    raise RecordFileError(path, offset, "the end record does not match the records before it")
                if f.read(1):
                    raise RecordFileError(path, offset + _FRAME.size + length, "data after the end record")
                return
            yield record
            count += 1
            running = zlib.crc32(payload, running)
            offset += _FRAME.size + length
