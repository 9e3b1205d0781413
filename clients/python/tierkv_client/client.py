"""A thin, typed client for tierkv's KVStoreService over gRPC.

The messages and stubs are generated from proto/tierkv/v1 (``buf generate`` writes them to
clients/python/gen); this module only adds a Pythonic surface: plain arguments and return
values, a bearer token and a deadline on every call, paging as a generator, and gRPC errors as
Python exceptions that keep the status code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Type, Union

import grpc

from . import _health
from ._generated import kvstore_pb2, kvstore_pb2_grpc

__all__ = [
    "TierkvClient",
    "Entry",
    "Check",
    "Operation",
    "TxnResult",
    "TxnOperationResult",
    "TierkvError",
    "KeyNotFound",
    "InvalidArgument",
    "Unauthenticated",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Unavailable",
    "DeadlineExceeded",
]


# --- errors -------------------------------------------------------------------------------------


class TierkvError(Exception):
    """A failed call. ``code`` is the gRPC status code, ``details`` the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str, method: str = "") -> None:
        self.code = code
        self.details = details
        self.method = method
        name = code.name if isinstance(code, grpc.StatusCode) else str(code)
        super().__init__(f"{method + ': ' if method else ''}{name}: {details}")


class KeyNotFound(TierkvError, KeyError):
    """NOT_FOUND: the key does not exist (Read)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return Exception.__str__(self)


class InvalidArgument(TierkvError, ValueError):
    """INVALID_ARGUMENT: a bad namespace, key, version or request."""


class Unauthenticated(TierkvError):
    """UNAUTHENTICATED: no token, or one the server does not know."""


class PermissionDenied(TierkvError):
    """PERMISSION_DENIED: the token's roles do not allow the call."""


class ResourceExhausted(TierkvError):
    """RESOURCE_EXHAUSTED: a quota or a server limit."""


class FailedPrecondition(TierkvError):
    """FAILED_PRECONDITION: the server cannot do this in its present state."""


class Unavailable(TierkvError):
    """UNAVAILABLE: the server (or a tier it needs) could not be reached; retrying may help."""


class DeadlineExceeded(TierkvError):
    """DEADLINE_EXCEEDED: the call took longer than its timeout."""


_ERRORS: Dict[grpc.StatusCode, Type[TierkvError]] = {
    grpc.StatusCode.NOT_FOUND: KeyNotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def _error(method: str, error: grpc.RpcError) -> TierkvError:
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (error.details() if isinstance(error, grpc.Call) else None) or str(error)
    return _ERRORS.get(code, TierkvError)(code, details, method)


# --- values -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A stored value with the version of the mutation that wrote it and its revision (1 when the
    key was created, +1 on every write since; 0 when the store does not know)."""

    value: bytes
    version: int
    revision: int


@dataclass(frozen=True)
class Check:
    """A Txn condition on one key's current state; make one with absent/present/revision."""

    primary_namespace: str
    secondary_namespace: str
    key: str
    expect: str  # "absent", "present" or "revision"
    revision: int = 0

    @classmethod
    def absent(cls, ns: str, sub: str, key: str) -> "Check":
        """The key must not exist."""
        return cls(ns, sub, key, "absent")

    @classmethod
    def present(cls, ns: str, sub: str, key: str) -> "Check":
        """The key must exist."""
        return cls(ns, sub, key, "present")

    @classmethod
    def at_revision(cls, ns: str, sub: str, key: str, revision: int) -> "Check":
        """The key's revision must equal ``revision`` (> 0)."""
        return cls(ns, sub, key, "revision", revision)

    def to_proto(self) -> "kvstore_pb2.TxnCheck":
        message = kvstore_pb2.TxnCheck(
            primary_namespace=self.primary_namespace,
            secondary_namespace=self.secondary_namespace,
            key=self.key,
        )
        if self.expect == "absent":
            message.absent = True
        elif self.expect == "present":
            message.present = True
        elif self.expect == "revision":
            message.revision = self.revision
        else:
            raise ValueError(f"Check.expect must be absent, present or revision, not {self.expect!r}")
        return message


@dataclass(frozen=True)
class Operation:
    """A Txn write or remove; make one with Operation.write or Operation.remove."""

    primary_namespace: str
    secondary_namespace: str
    key: str
    value: Optional[bytes] = None  # None: a remove
    lazy: bool = False

    @classmethod
    def write(cls, ns: str, sub: str, key: str, value: bytes) -> "Operation":
        return cls(ns, sub, key, bytes(value))

    @classmethod
    def remove(cls, ns: str, sub: str, key: str, lazy: bool = False) -> "Operation":
        return cls(ns, sub, key, None, lazy)

    def to_proto(self) -> "kvstore_pb2.TxnOperation":
        message = kvstore_pb2.TxnOperation(
            primary_namespace=self.primary_namespace,
            secondary_namespace=self.secondary_namespace,
            key=self.key,
        )
        if self.value is None:
            message.remove.lazy = self.lazy
        else:
            message.write.value = self.value
        return message


@dataclass(frozen=True)
class TxnOperationResult:
    applied: bool
    revision: int  # the revision the write stored; 0 for a remove


@dataclass(frozen=True)
class TxnResult:
    """``succeeded``: every check held and every operation was applied. Otherwise nothing changed
    and ``failed_check`` is the index of the first check that failed."""

    succeeded: bool
    failed_check: Optional[int] = None
    results: List[TxnOperationResult] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.succeeded


CheckLike = Union[Check, "kvstore_pb2.TxnCheck"]
OperationLike = Union[Operation, "kvstore_pb2.TxnOperation"]


# --- the client ---------------------------------------------------------------------------------


class TierkvClient:
    """A connection to one tierkv server's KVStoreService.

    ``address`` is ``host:port``. ``token`` is sent as ``authorization: Bearer <token>`` on every
    call (servers run with ``--auth tokens``). ``timeout`` is each call's deadline in seconds.
    ``credentials`` (``grpc.ssl_channel_credentials(...)``) makes a TLS channel; without it the
    channel is plaintext. Use it as a context manager, or call close().
    """

    def __init__(
        self,
        address: str,
        token: Optional[str] = None,
        timeout: float = 30.0,
        credentials: Optional[grpc.ChannelCredentials] = None,
        options: Optional[Sequence[Tuple[str, Union[int, str]]]] = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        channel_options = list(options or [])
        if credentials is None:
            self._channel = grpc.insecure_channel(address, options=channel_options)
        else:
            self._channel = grpc.secure_channel(address, credentials, options=channel_options)
        self._metadata: Tuple[Tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        self._stub = kvstore_pb2_grpc.KVStoreServiceStub(self._channel)
        self._health_check = self._channel.unary_unary(
            _health.HEALTH_CHECK_METHOD,
            request_serializer=_health.HealthCheckRequest.SerializeToString,
            response_deserializer=_health.HealthCheckResponse.FromString,
        )

    # context manager

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "TierkvClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # calls

    def _call(self, name: str, method: Callable[..., Any], request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise _error(name, error) from error

    def read(self, ns: str, sub: str, key: str) -> bytes:
        """The key's value; raises KeyNotFound when it does not exist."""
        return self.read_entry(ns, sub, key).value

    def read_entry(self, ns: str, sub: str, key: str) -> Entry:
        """The key's value with its version and revision; raises KeyNotFound."""
        response = self._call(
            "Read",
            self._stub.Read,
            kvstore_pb2.ReadRequest(primary_namespace=ns, secondary_namespace=sub, key=key),
        )
        return Entry(bytes(response.value), response.version, response.revision)

    def write(self, ns: str, sub: str, key: str, value: bytes, version: int = 0) -> bool:
        """Replaces the value. Returns whether it was applied: False when a mutation of the key with
        a higher ``version`` was already applied (0: the server assigns the version)."""
        response = self._call(
            "Write",
            self._stub.Write,
            kvstore_pb2.WriteRequest(
                primary_namespace=ns, secondary_namespace=sub, key=key, value=bytes(value), version=version
            ),
        )
        return bool(response.applied)

    def remove(self, ns: str, sub: str, key: str, lazy: bool = False, version: int = 0) -> bool:
        """Deletes the key (an absent key is fine). Returns whether it was applied, as write."""
        response = self._call(
            "Remove",
            self._stub.Remove,
            kvstore_pb2.RemoveRequest(
                primary_namespace=ns, secondary_namespace=sub, key=key, lazy=lazy, version=version
            ),
        )
        return bool(response.applied)

    def list(self, ns: str, sub: str) -> List[str]:
        """Every key of the namespace pair in one reply (order unspecified)."""
        response = self._call(
            "List", self._stub.List, kvstore_pb2.ListRequest(primary_namespace=ns, secondary_namespace=sub)
        )
        return list(response.keys)

    def list_page(self, ns: str, sub: str, page_size: int = 0, page_token: str = "") -> Tuple[List[str], str]:
        """One page of the namespace pair's keys and the token of the next page ("" after the
        last). ``page_size`` 0 means the server's default."""
        response = self._call(
            "ListPage",
            self._stub.ListPage,
            kvstore_pb2.ListPageRequest(
                primary_namespace=ns, secondary_namespace=sub, page_size=page_size, page_token=page_token
            ),
        )
        return list(response.keys), response.next_page_token

    def keys(self, ns: str, sub: str, page_size: int = 0) -> Iterator[str]:
        """Every key of the namespace pair, fetched a page at a time as the caller iterates."""
        token = ""
        while True:
            page, token = self.list_page(ns, sub, page_size, token)
            yield from page
            if not token:
                return

    def txn(self, checks: Sequence[CheckLike], operations: Sequence[OperationLike], version: int = 0) -> TxnResult:
        """Applies ``operations`` atomically if every check holds. A failed check is not an error:
        the result has succeeded=False and failed_check set, and nothing changed."""
        request = kvstore_pb2.TxnRequest(
            checks=[c.to_proto() if isinstance(c, Check) else c for c in checks],
            operations=[o.to_proto() if isinstance(o, Operation) else o for o in operations],
            version=version,
        )
        response = self._call("Txn", self._stub.Txn, request)
        if not response.succeeded:
            return TxnResult(False, response.failed_check, [])
        return TxnResult(True, None, [TxnOperationResult(r.applied, r.revision) for r in response.results])

    def health(self, service: str = "") -> str:
        """The grpc.health.v1 status ("SERVING", "NOT_SERVING", ...) of ``service`` ("" is the whole
        server; "tierkv.v1.KVStoreService" the store service)."""
        response = self._call(
            "Health.Check", self._health_check, _health.HealthCheckRequest(service=service)
        )
        return _health.status_name(response)
