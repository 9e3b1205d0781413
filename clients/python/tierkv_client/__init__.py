"""tierkv_client: a Python client for tierkv's KVStoreService (see README.md)."""

from .client import (
    Check,
    DeadlineExceeded,
    Entry,
    FailedPrecondition,
    InvalidArgument,
    KeyNotFound,
    Operation,
    PermissionDenied,
    ResourceExhausted,
    TierkvClient,
    TierkvError,
    TxnOperationResult,
    TxnResult,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "Check",
    "DeadlineExceeded",
    "Entry",
    "FailedPrecondition",
    "InvalidArgument",
    "KeyNotFound",
    "Operation",
    "PermissionDenied",
    "ResourceExhausted",
    "TierkvClient",
    "TierkvError",
    "TxnOperationResult",
    "TxnResult",
    "Unauthenticated",
    "Unavailable",
]
