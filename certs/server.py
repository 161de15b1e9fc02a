"""The hub's TLS server certificate: the names it covers and when to renew it."""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from .errors import CertificateError
from .keys import key_matches, read_certificate, read_private_key

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")

GeneralName = x509.DNSName | x509.IPAddress


@dataclass(frozen=True)
class ServerCertificate:
    """The server certificate on disk. ``issued`` is True when this call (re)issued it, and
    ``reason`` says why (or why it was kept)."""

    cert_path: Path
    key_path: Path
    serial: int
    not_after: datetime
    names: tuple[str, ...]
    issued: bool
    reason: str


def general_name(name: str) -> GeneralName:
    """An IP address (``[v6]`` allowed) or a DNS name (lower-cased, IDNA-encoded; ``*.``
    allowed as the first label)."""
    text = name.strip() if isinstance(name, str) else ""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:  # a zone (fe80::1%eth0) means nothing to a peer: the address alone
        return x509.IPAddress(ipaddress.ip_address(text.partition("%")[0]))
    except ValueError:
        pass
    try:
        dns = text.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        dns = ""
    labels = dns.split(".")
    if labels[0] == "*" and len(labels) > 2:
        labels = labels[1:]
    if not dns or len(dns) > 253 or not all(_LABEL.match(label) for label in labels):
        raise CertificateError(f"{name!r} is neither an IP address nor a valid DNS name")
    return x509.DNSName(dns)


def show(name: GeneralName) -> str:
    return str(name.value)


def wanted_names(extra: Iterable[str]) -> list[GeneralName]:
    """The loopback names, this host's name, then ``extra``, without repeats."""
    names: list[GeneralName] = [general_name(name) for name in LOOPBACK_NAMES]
    hostname = socket.gethostname()
    try:
        names.append(general_name(hostname))
    except CertificateError:
        log.warning("host name %r is not a valid DNS name; left out of the certificate", hostname)
    if isinstance(extra, str):
        raise CertificateError("names must be a list of names, not one string")
    names.extend(general_name(name) for name in extra)
    return list(dict.fromkeys(names))


def names_of(certificate: x509.Certificate) -> set[GeneralName]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return set()
    return {name for name in extension.value if isinstance(name, x509.DNSName | x509.IPAddress)}


def why_renew(
    cert_path: Path,
    key_path: Path,
    ca_cert: x509.Certificate,
    wanted: list[GeneralName],
    now: datetime,
    renew_within: timedelta,
) -> tuple[str | None, x509.Certificate | None]:
    """Why the certificate on disk must be (re)issued, or None and the certificate to keep."""
    if not cert_path.exists() or not key_path.exists():
        return "none on disk", None
    try:
        certificate = read_certificate(cert_path)
        key: CertificateIssuerPrivateKeyTypes = read_private_key(key_path)
    except CertificateError as exc:
        return f"unreadable ({exc})", None
    if not key_matches(key, certificate):
        return "its key file does not match it", None
    try:
        if certificate.issuer != ca_cert.subject:
            raise ValueError
        certificate.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return "not signed by this CA", None
    if names_of(certificate) != set(wanted):
        return "the names changed", None
    if now < certificate.not_valid_before_utc:
        return "not valid yet", None
    if certificate.not_valid_after_utc - now <= renew_within:
        return f"it expires on {certificate.not_valid_after_utc:%Y-%m-%d}", None
    return None, certificate
