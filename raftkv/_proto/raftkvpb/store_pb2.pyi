from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CountsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CountsResponse(_message.Message):
    __slots__ = ("member_id", "revision", "compact_revision", "key_count", "lease_count", "watcher_count")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    COMPACT_REVISION_FIELD_NUMBER: _ClassVar[int]
    KEY_COUNT_FIELD_NUMBER: _ClassVar[int]
    LEASE_COUNT_FIELD_NUMBER: _ClassVar[int]
    WATCHER_COUNT_FIELD_NUMBER: _ClassVar[int]
    member_id: int
    revision: int
    compact_revision: int
    key_count: int
    lease_count: int
    watcher_count: int
    def __init__(self, member_id: _Optional[int] = ..., revision: _Optional[int] = ..., compact_revision: _Optional[int] = ..., key_count: _Optional[int] = ..., lease_count: _Optional[int] = ..., watcher_count: _Optional[int] = ...) -> None: ...
