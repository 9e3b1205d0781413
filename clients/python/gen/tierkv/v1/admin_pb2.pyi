from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BackupStatusRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class BackupStatusResponse(_message.Message):
    __slots__ = ["configured", "divergences", "down_ms", "follower", "healing", "heals", "last_stop_clean", "owed_keys", "policy", "state", "time_limit_ms", "transitions"]
    CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    DIVERGENCES_FIELD_NUMBER: _ClassVar[int]
    DOWN_MS_FIELD_NUMBER: _ClassVar[int]
    FOLLOWER_FIELD_NUMBER: _ClassVar[int]
    HEALING_FIELD_NUMBER: _ClassVar[int]
    HEALS_FIELD_NUMBER: _ClassVar[int]
    LAST_STOP_CLEAN_FIELD_NUMBER: _ClassVar[int]
    OWED_KEYS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TIME_LIMIT_MS_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    configured: bool
    divergences: int
    down_ms: int
    follower: FollowerStatus
    healing: bool
    heals: int
    last_stop_clean: bool
    owed_keys: int
    policy: str
    state: str
    time_limit_ms: int
    transitions: int
    def __init__(self, configured: bool = ..., policy: _Optional[str] = ..., owed_keys: _Optional[int] = ..., divergences: _Optional[int] = ..., state: _Optional[str] = ..., transitions: _Optional[int] = ..., down_ms: _Optional[int] = ..., time_limit_ms: _Optional[int] = ..., last_stop_clean: bool = ..., healing: bool = ..., heals: _Optional[int] = ..., follower: _Optional[_Union[FollowerStatus, _Mapping]] = ...) -> None: ...

class FollowerStatus(_message.Message):
    __slots__ = ["applied_changes", "connected", "full_copies", "lag_changes", "lag_seconds", "last_error", "leader", "state"]
    APPLIED_CHANGES_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    FULL_COPIES_FIELD_NUMBER: _ClassVar[int]
    LAG_CHANGES_FIELD_NUMBER: _ClassVar[int]
    LAG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    applied_changes: int
    connected: bool
    full_copies: int
    lag_changes: int
    lag_seconds: float
    last_error: str
    leader: str
    state: str
    def __init__(self, leader: _Optional[str] = ..., state: _Optional[str] = ..., connected: bool = ..., lag_changes: _Optional[int] = ..., lag_seconds: _Optional[float] = ..., applied_changes: _Optional[int] = ..., full_copies: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class ResyncRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ResyncResponse(_message.Message):
    __slots__ = ["copied", "done", "primary_keys", "primary_scanned", "removed", "scanned", "unchanged"]
    COPIED_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_KEYS_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_SCANNED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    SCANNED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    copied: int
    done: bool
    primary_keys: int
    primary_scanned: int
    removed: int
    scanned: int
    unchanged: int
    def __init__(self, scanned: _Optional[int] = ..., copied: _Optional[int] = ..., removed: _Optional[int] = ..., unchanged: _Optional[int] = ..., done: bool = ..., primary_keys: _Optional[int] = ..., primary_scanned: _Optional[int] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class SnapshotResponse(_message.Message):
    __slots__ = ["chunk", "summary"]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    summary: SnapshotSummary
    def __init__(self, chunk: _Optional[bytes] = ..., summary: _Optional[_Union[SnapshotSummary, _Mapping]] = ...) -> None: ...

class SnapshotStoreCount(_message.Message):
    __slots__ = ["keys", "store_id", "value_bytes"]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_BYTES_FIELD_NUMBER: _ClassVar[int]
    keys: int
    store_id: str
    value_bytes: int
    def __init__(self, store_id: _Optional[str] = ..., keys: _Optional[int] = ..., value_bytes: _Optional[int] = ...) -> None: ...

class SnapshotSummary(_message.Message):
    __slots__ = ["file_bytes", "sha256", "stores"]
    FILE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    STORES_FIELD_NUMBER: _ClassVar[int]
    file_bytes: int
    sha256: str
    stores: _containers.RepeatedCompositeFieldContainer[SnapshotStoreCount]
    def __init__(self, sha256: _Optional[str] = ..., file_bytes: _Optional[int] = ..., stores: _Optional[_Iterable[_Union[SnapshotStoreCount, _Mapping]]] = ...) -> None: ...

class StoreUsageRequest(_message.Message):
    __slots__ = ["recount", "store_id"]
    RECOUNT_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    recount: bool
    store_id: str
    def __init__(self, store_id: _Optional[str] = ..., recount: bool = ...) -> None: ...

class StoreUsageResponse(_message.Message):
    __slots__ = ["bytes", "drift_bytes", "drift_keys", "keys", "store_id"]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    DRIFT_BYTES_FIELD_NUMBER: _ClassVar[int]
    DRIFT_KEYS_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    bytes: int
    drift_bytes: int
    drift_keys: int
    keys: int
    store_id: str
    def __init__(self, store_id: _Optional[str] = ..., keys: _Optional[int] = ..., bytes: _Optional[int] = ..., drift_keys: _Optional[int] = ..., drift_bytes: _Optional[int] = ...) -> None: ...
