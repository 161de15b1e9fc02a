"""The store not answering (a cluster electing a stream leader, or without a quorum), as
every binding refuses it: 503 with a time to retry, not an internal error. What was
asked was not done, or its outcome is unknown (docs/bucketstore.md)."""

from __future__ import annotations

import logging

from bucketstore import StoreUnavailableError
from vocabulary.problems import ServiceUnavailable

log = logging.getLogger("wothub.core")

RETRY_AFTER = 2  # seconds: a stream leader is usually elected within them


def store_unavailable(exc: StoreUnavailableError) -> ServiceUnavailable:
    log.warning("the store did not answer: %s", exc)
    return ServiceUnavailable(
        "the hub's store did not answer in time (in a cluster: a node was lost, or too "
        "few nodes are up); try again",
        retryAfter=RETRY_AFTER,
    )
