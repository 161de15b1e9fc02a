"""The hub CA, its server certificate, client certificates and revocation.

Times are timezone-aware UTC ``datetime`` objects everywhere in this package (the ``now``
parameters, which exist so tests and tools can issue "in the past" without sleeping, and
every returned time); JSON gets RFC 3339. See docs/certificates.md.
"""

from .authority import CertificateAuthority
from .errors import CertificateError
from .issued import IssuedCertificate
from .server import ServerCertificate

__all__ = [
    "CertificateAuthority",
    "CertificateError",
    "IssuedCertificate",
    "ServerCertificate",
]
