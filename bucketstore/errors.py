"""Errors raised by every bucket store backend.

Callers catch these, never a backend library's own exceptions, so a backend can be
swapped without touching them. Each message names the path, bucket or key involved.
"""


class BucketStoreError(Exception):
    """Base class of every bucket store error."""


class StoreLockedError(BucketStoreError):
    """The store directory is held by another process (or another open store)."""


class StorePathError(BucketStoreError):
    """The store directory cannot be created, read or written."""


class StoreClosedError(BucketStoreError):
    """The store was closed; its buckets can no longer be used."""


class StoreUnavailableError(BucketStoreError):
    """A networked store's servers cannot be reached or did not answer in time."""


class InvalidKeyError(BucketStoreError, ValueError):
    """A key or bucket name is empty, not a str, not encodable as UTF-8, or longer than
    the backend can store."""


class InvalidValueError(BucketStoreError, TypeError):
    """A value is not bytes, or is larger than the backend can store."""


class UnknownBackendError(BucketStoreError, LookupError):
    """No backend is registered under the requested name."""
