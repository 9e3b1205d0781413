from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

CHANGE_TYPE_PUT: ChangeType
CHANGE_TYPE_REMOVE: ChangeType
CHANGE_TYPE_UNSPECIFIED: ChangeType
DESCRIPTOR: _descriptor.FileDescriptor

class Change(_message.Message):
    __slots__ = ["commit_time_ms", "key", "primary_namespace", "revision", "secondary_namespace", "sequence", "size", "store_id", "superseded", "type", "value", "version"]
    COMMIT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    commit_time_ms: int
    key: str
    primary_namespace: str
    revision: int
    secondary_namespace: str
    sequence: int
    size: int
    store_id: str
    superseded: bool
    type: ChangeType
    value: bytes
    version: int
    def __init__(self, store_id: _Optional[str] = ..., sequence: _Optional[int] = ..., type: _Optional[_Union[ChangeType, str]] = ..., primary_namespace: _Optional[str] = ..., secondary_namespace: _Optional[str] = ..., key: _Optional[str] = ..., version: _Optional[int] = ..., revision: _Optional[int] = ..., size: _Optional[int] = ..., value: _Optional[bytes] = ..., commit_time_ms: _Optional[int] = ..., superseded: bool = ...) -> None: ...

class KeyVersion(_message.Message):
    __slots__ = ["key", "primary_namespace", "revision", "secondary_namespace", "store_id", "version"]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    key: str
    primary_namespace: str
    revision: int
    secondary_namespace: str
    store_id: str
    version: int
    def __init__(self, primary_namespace: _Optional[str] = ..., secondary_namespace: _Optional[str] = ..., key: _Optional[str] = ..., version: _Optional[int] = ..., store_id: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class ListAllKeysRequest(_message.Message):
    __slots__ = ["all_stores", "page_size", "page_token", "store_id"]
    ALL_STORES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    all_stores: bool
    page_size: int
    page_token: str
    store_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., store_id: _Optional[str] = ..., all_stores: bool = ...) -> None: ...

class ListAllKeysResponse(_message.Message):
    __slots__ = ["keys", "next_page_token"]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[KeyVersion]
    next_page_token: str
    def __init__(self, keys: _Optional[_Iterable[_Union[KeyVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListPageRequest(_message.Message):
    __slots__ = ["page_size", "page_token", "primary_namespace", "secondary_namespace", "store_id"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    primary_namespace: str
    secondary_namespace: str
    store_id: str
    def __init__(self, primary_namespace: _Optional[str] = ..., secondary_namespace: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., store_id: _Optional[str] = ...) -> None: ...

class ListPageResponse(_message.Message):
    __slots__ = ["keys", "next_page_token"]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    next_page_token: str
    def __init__(self, keys: _Optional[_Iterable[str]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ["primary_namespace", "secondary_namespace", "store_id"]
    PRIMARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    primary_namespace: str
    secondary_namespace: str
    store_id: str
    def __init__(self, primary_namespace: _Optional[str] = ..., secondary_namespace: _Optional[str] = ..., store_id: _Optional[str] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ["keys"]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, keys: _Optional[_Iterable[str]] = ...) -> None: ...

class MutateRequest(_message.Message):
    __slots__ = ["mutations"]
    MUTATIONS_FIELD_NUMBER: _ClassVar[int]
    mutations: _containers.RepeatedCompositeFieldContainer[Mutation]
    def __init__(self, mutations: _Optional[_Iterable[_Union[Mutation, _Mapping]]] = ...) -> None: ...

class MutateResponse(_message.Message):
    __slots__ = ["results"]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[MutationResult]
    def __init__(self, results: _Optional[_Iterable[_Union[MutationResult, _Mapping]]] = ...) -> None: ...

class Mutation(_message.Message):
    __slots__ = ["key", "primary_namespace", "remove", "secondary_namespace", "store_id", "version", "write"]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    key: str
    primary_namespace: str
    remove: RemoveMutation
    secondary_namespace: str
    store_id: str
    version: int
    write: WriteMutation
    def __init__(self, primary_namespace: _Optional[str] = ..., secondary_namespace: _Optional[str] = ..., key: _Optional[str] = ..., version: _Optional[int] = ..., write: _Optional[_Union[WriteMutation, _Mapping]] = ..., remove: _Optional[_Union[RemoveMutation, _Mapping]] = ..., store_id: _Optional[str] = ...) -> None: ...

class MutationResult(_message.Message):
    __slots__ = ["applied", "code", "message", "version"]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    code: int
    message: str
    version: int
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., applied: bool = ..., version: _Optional[int] = ...) -> None: ...

class ReadRequest(_message.Message):
    __slots__ = ["key", "primary_namespace", "secondary_namespace", "store_id"]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    key: str
    primary_namespace: str
    secondary_namespace: str
    store_id: str
    def __init__(self, primary_namespace: _Optional[str] = ..., secondary_namespace: _Optional[str] = ..., key: _Optional[str] = ..., store_id: _Optional[str] = ...) -> None: ...

class ReadResponse(_message.Message):
    __slots__ = ["revision", "value", "version"]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    value: bytes
    version: int
    def __init__(self, value: _Optional[bytes] = ..., version: _Optional[int] = ..., revision: _Optional[int] = ...) -> None: ...

class RemoveMutation(_message.Message):
    __slots__ = ["lazy"]
    LAZY_FIELD_NUMBER: _ClassVar[int]
    lazy: bool
    def __init__(self, lazy: bool = ...) -> None: ...

class RemoveRequest(_message.Message):
    __slots__ = ["key", "lazy", "primary_namespace", "secondary_namespace", "store_id", "version"]
    KEY_FIELD_NUMBER: _ClassVar[int]
    LAZY_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    key: str
    lazy: bool
    primary_namespace: str
    secondary_namespace: str
    store_id: str
    version: int
    def __init__(self, primary_namespace: _Optional[str] = ..., secondary_namespace: _Optional[str] = ..., key: _Optional[str] = ..., lazy: bool = ..., version: _Optional[int] = ..., store_id: _Optional[str] = ...) -> None: ...

class RemoveResponse(_message.Message):
    __slots__ = ["applied", "version"]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    version: int
    def __init__(self, applied: bool = ..., version: _Optional[int] = ...) -> None: ...

class TxnCheck(_message.Message):
    __slots__ = ["absent", "key", "present", "primary_namespace", "revision", "secondary_namespace", "store_id"]
    ABSENT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    absent: bool
    key: str
    present: bool
    primary_namespace: str
    revision: int
    secondary_namespace: str
    store_id: str
    def __init__(self, primary_namespace: _Optional[str] = ..., secondary_namespace: _Optional[str] = ..., key: _Optional[str] = ..., store_id: _Optional[str] = ..., absent: bool = ..., present: bool = ..., revision: _Optional[int] = ...) -> None: ...

class TxnOperation(_message.Message):
    __slots__ = ["key", "primary_namespace", "remove", "secondary_namespace", "store_id", "version", "write"]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    key: str
    primary_namespace: str
    remove: RemoveMutation
    secondary_namespace: str
    store_id: str
    version: int
    write: WriteMutation
    def __init__(self, primary_namespace: _Optional[str] = ..., secondary_namespace: _Optional[str] = ..., key: _Optional[str] = ..., store_id: _Optional[str] = ..., write: _Optional[_Union[WriteMutation, _Mapping]] = ..., remove: _Optional[_Union[RemoveMutation, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class TxnOperationResult(_message.Message):
    __slots__ = ["applied", "revision", "version"]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    revision: int
    version: int
    def __init__(self, applied: bool = ..., revision: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class TxnRequest(_message.Message):
    __slots__ = ["checks", "operations", "version"]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    checks: _containers.RepeatedCompositeFieldContainer[TxnCheck]
    operations: _containers.RepeatedCompositeFieldContainer[TxnOperation]
    version: int
    def __init__(self, checks: _Optional[_Iterable[_Union[TxnCheck, _Mapping]]] = ..., operations: _Optional[_Iterable[_Union[TxnOperation, _Mapping]]] = ..., version: _Optional[int] = ...) -> None: ...

class TxnResponse(_message.Message):
    __slots__ = ["failed_check", "results", "succeeded"]
    FAILED_CHECK_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    failed_check: int
    results: _containers.RepeatedCompositeFieldContainer[TxnOperationResult]
    succeeded: bool
    def __init__(self, succeeded: bool = ..., failed_check: _Optional[int] = ..., results: _Optional[_Iterable[_Union[TxnOperationResult, _Mapping]]] = ...) -> None: ...

class WatchProgress(_message.Message):
    __slots__ = ["heads", "pending", "sequence", "time_ms"]
    class HeadsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    HEADS_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    heads: _containers.ScalarMap[str, int]
    pending: int
    sequence: int
    time_ms: int
    def __init__(self, sequence: _Optional[int] = ..., pending: _Optional[int] = ..., time_ms: _Optional[int] = ..., heads: _Optional[_Mapping[str, int]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ["all_stores", "primary_namespace", "secondary_namespace", "start_sequence", "starts", "store_id", "values"]
    class StartsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ALL_STORES_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STARTS_FIELD_NUMBER: _ClassVar[int]
    START_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    all_stores: bool
    primary_namespace: str
    secondary_namespace: str
    start_sequence: int
    starts: _containers.ScalarMap[str, int]
    store_id: str
    values: bool
    def __init__(self, store_id: _Optional[str] = ..., primary_namespace: _Optional[str] = ..., secondary_namespace: _Optional[str] = ..., start_sequence: _Optional[int] = ..., values: bool = ..., all_stores: bool = ..., starts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ["change", "progress"]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    change: Change
    progress: WatchProgress
    def __init__(self, change: _Optional[_Union[Change, _Mapping]] = ..., progress: _Optional[_Union[WatchProgress, _Mapping]] = ...) -> None: ...

class WriteMutation(_message.Message):
    __slots__ = ["exact", "revision", "value"]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    exact: bool
    revision: int
    value: bytes
    def __init__(self, value: _Optional[bytes] = ..., revision: _Optional[int] = ..., exact: bool = ...) -> None: ...

class WriteRequest(_message.Message):
    __slots__ = ["key", "primary_namespace", "secondary_namespace", "store_id", "value", "version"]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    key: str
    primary_namespace: str
    secondary_namespace: str
    store_id: str
    value: bytes
    version: int
    def __init__(self, primary_namespace: _Optional[str] = ..., secondary_namespace: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[bytes] = ..., version: _Optional[int] = ..., store_id: _Optional[str] = ...) -> None: ...

class WriteResponse(_message.Message):
    __slots__ = ["applied", "version"]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    version: int
    def __init__(self, applied: bool = ..., version: _Optional[int] = ...) -> None: ...

class ChangeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
