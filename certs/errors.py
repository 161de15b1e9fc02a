"""The one refusal of the certs package."""

from __future__ import annotations


class CertificateError(Exception):
    """A CSR, certificate, name or file the hub refuses; the message says which check failed.

    Callers turn it into their own refusal: a 400 for a bad CSR, a refused connection for a
    client certificate that does not verify.
    """
