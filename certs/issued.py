"""The record of every client certificate the CA issued, and revocation.

Bucket layout (one bucket, given by the caller, usually ``certs``):

- ``issued\\0<serial>`` -> the record as JSON (the certificate PEM included)
- ``client\\0<client id>\\0<serial>`` -> empty: the index behind ``list_issued(client_id)``

``<serial>`` is the serial number as 32 lowercase hex digits. A record and its index entry
are written in one atomic batch; revoking rewrites the record only.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from bucketstore import Bucket

from .errors import CertificateError
from .times import rfc3339

ISSUED = "issued\0"
BY_CLIENT = "client\0"


def serial_hex(serial: int) -> str:
    return f"{serial:032x}"


@dataclass(frozen=True)
class IssuedCertificate:
    """A client certificate the hub issued. Times are timezone-aware UTC datetimes."""

    serial: int
    client_id: str
    not_before: datetime
    not_after: datetime
    cert_pem: bytes
    revoked: bool = False
    revoked_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """For JSON: the serial as 32 hex digits, times in RFC 3339, the certificate PEM."""
        return {
            "serial": serial_hex(self.serial),
            "clientID": self.client_id,
            "notBefore": rfc3339(self.not_before),
            "notAfter": rfc3339(self.not_after),
            "revoked": self.revoked,
            "revokedAt": rfc3339(self.revoked_at) if self.revoked_at else None,
            "certificate": self.cert_pem.decode(),
        }

    def _encode(self) -> bytes:
        record = asdict(self)
        for name in ("not_before", "not_after", "revoked_at"):
            record[name] = record[name] and record[name].isoformat()
        record["cert_pem"] = self.cert_pem.decode()
        return json.dumps(record).encode()

    @classmethod
    def _decode(cls, data: bytes) -> IssuedCertificate:
        record = json.loads(data)
        for name in ("not_before", "not_after", "revoked_at"):
            record[name] = record[name] and datetime.fromisoformat(record[name])
        record["cert_pem"] = record["cert_pem"].encode()
        return cls(**record)


class IssuedRecords:
    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket

    def add(self, issued: IssuedCertificate) -> None:
        serial = serial_hex(issued.serial)
        self.bucket.batch(
            set={
                ISSUED + serial: issued._encode(),
                f"{BY_CLIENT}{issued.client_id}\0{serial}": b"",
            }
        )

    def serial_of(self, key: str) -> int | None:
        """The serial a record's key names, or None for an index key."""
        return int(key[len(ISSUED) :], 16) if key.startswith(ISSUED) else None

    def get(self, serial: int) -> IssuedCertificate | None:
        data = self.bucket.get(ISSUED + serial_hex(serial))
        return None if data is None else IssuedCertificate._decode(data)

    def list(self, client_id: str | None = None) -> list[IssuedCertificate]:
        """Oldest first (by ``not_before``, then serial)."""
        found = list(self._all() if client_id is None else self._of(client_id))
        return sorted(found, key=lambda issued: (issued.not_before, issued.serial))

    def revoke(self, serial: int, now: datetime) -> IssuedCertificate:
        if isinstance(serial, bool) or not isinstance(serial, int):
            raise CertificateError(f"a serial number is an integer, not {serial!r}")
        issued = self.get(serial)
        if issued is None:
            raise CertificateError(
                f"unknown serial {serial_hex(serial)}: this hub issued no such certificate"
            )
        if issued.revoked:
            return issued
        issued = replace(issued, revoked=True, revoked_at=now)
        self.bucket.set(ISSUED + serial_hex(serial), issued._encode())
        return issued

    # builtins.list: in this class, ``list`` names the method above.
    def revoke_client(self, client_id: str, now: datetime) -> builtins.list[IssuedCertificate]:
        """Revoke every certificate of ``client_id`` not yet revoked, in one write."""
        revoked = [
            replace(issued, revoked=True, revoked_at=now)
            for issued in self._of(client_id)
            if not issued.revoked
        ]
        if revoked:
            self.bucket.batch(
                set={ISSUED + serial_hex(issued.serial): issued._encode() for issued in revoked}
            )
        return sorted(revoked, key=lambda issued: (issued.not_before, issued.serial))

    def _all(self) -> Iterator[IssuedCertificate]:
        for data in self.bucket.values(prefix=ISSUED):
            yield IssuedCertificate._decode(data)

    def _of(self, client_id: str) -> Iterator[IssuedCertificate]:
        prefix = f"{BY_CLIENT}{client_id}\0"
        keys = [ISSUED + key[len(prefix) :] for key in self.bucket.keys(prefix=prefix)]
        for data in self.bucket.get_many(keys).values():
            yield IssuedCertificate._decode(data)
