"""Key-value buckets: the one persistence API of the hub (see ``api`` for the contract)."""

from .api import Bucket, BucketStore
from .errors import (
    BucketStoreError,
    InvalidKeyError,
    InvalidValueError,
    StoreClosedError,
    StoreLockedError,
    StorePathError,
    StoreUnavailableError,
    UnknownBackendError,
)
from .registry import DEFAULT_BACKEND, backend_names, open_store, register_backend

__all__ = [
    "DEFAULT_BACKEND",
    "Bucket",
    "BucketStore",
    "BucketStoreError",
    "InvalidKeyError",
    "InvalidValueError",
    "StoreClosedError",
    "StoreLockedError",
    "StorePathError",
    "StoreUnavailableError",
    "UnknownBackendError",
    "backend_names",
    "open_store",
    "register_backend",
]
