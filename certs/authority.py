"""The hub's certificate authority: made once, kept for good, and the only signer.

``<home>/certs/`` (mode 0700) holds ``ca.pem`` and ``ca.key`` (0600) from the first run
on, and ``server.pem`` / ``server.key`` (0600) once ``ensure_server_certificate`` ran.
Client certificates are issued from a CSR or with a key pair made here, recorded in a
bucket (``certs.issued``), and checked by ``verify_client_certificate``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import ssl
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bucketstore import Bucket

from .errors import CertificateError
from .issued import IssuedCertificate, IssuedRecords, serial_hex
from .keys import (
    PRIVATE_MODE,
    PUBLIC_MODE,
    check_client_key,
    key_matches,
    make_private_directory,
    new_key,
    private_pem,
    read_certificate,
    read_private_key,
    signature_hash,
    write_file,
)
from .server import ServerCertificate, show, wanted_names, why_renew
from .times import rfc3339, utc, whole_days

log = logging.getLogger(__name__)

# Certificates start a little in the past so a peer whose clock is slightly behind
# does not refuse a certificate issued a moment ago.
BACKDATE = timedelta(minutes=5)
MAX_CN_LENGTH = 64  # X.509 upper bound for a common name


def random_serial() -> int:
    """A random positive 128-bit serial number."""
    while not (serial := secrets.randbits(128)):
        pass
    return serial


def check_client_id(client_id: object) -> str:
    if (
        not isinstance(client_id, str)
        or not 1 <= len(client_id) <= MAX_CN_LENGTH
        or any(ord(character) < 0x20 for character in client_id)
    ):
        raise CertificateError(
            f"a client id in a certificate is 1 to {MAX_CN_LENGTH} characters with no "
            f"control characters, not {client_id!r}"
        )
    return client_id


def is_client_certificate(certificate: x509.Certificate) -> bool:
    """Has the clientAuth extended key usage and is not a CA."""
    extensions = certificate.extensions
    try:
        usages = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    try:
        is_ca = extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return ExtendedKeyUsageOID.CLIENT_AUTH in usages and not is_ca


def parse_certificate(certificate: bytes | x509.Certificate) -> x509.Certificate:
    """A certificate object, or PEM or DER bytes (what ``getpeercert(True)`` returns)."""
    if isinstance(certificate, x509.Certificate):
        return certificate
    if not isinstance(certificate, bytes | bytearray | memoryview):
        raise CertificateError(f"expected a certificate as PEM or DER bytes, not {certificate!r}")
    data = bytes(certificate)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise CertificateError("not an X.509 certificate (PEM or DER)") from None


class CertificateAuthority:
    """Use ``load_or_create``; the constructor takes parts already loaded and checked."""

    def __init__(
        self,
        directory: Path,
        key: CertificateIssuerPrivateKeyTypes,
        certificate: x509.Certificate,
        bucket: Bucket,
    ) -> None:
        self.directory = directory
        self.certificate = certificate
        self._key = key
        self._records = IssuedRecords(bucket)
        self._ca_cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
        # Told of each certificate revoked (the hub then closes the NATS and MQTT
        # connections that logged in with it: their server checked it only at login).
        self.on_revoked: Callable[[IssuedCertificate], None] | None = None
        self._told_revoked: set[int] = set()  # serials on_revoked was told of

    # -- the CA itself ---------------------------------------------------------------------

    @classmethod
    def load_or_create(
        cls,
        home: Path,
        bucket: Bucket,
        *,
        ca_days: int = 3650,
        now: datetime | None = None,
    ) -> CertificateAuthority:
        """Load the CA in ``<home>/certs``, creating it on first use; never replace one."""
        directory = Path(home) / "certs"
        make_private_directory(directory)
        cert_path, key_path = directory / "ca.pem", directory / "ca.key"
        have_cert, have_key = cert_path.exists(), key_path.exists()
        if not have_cert and not have_key:
            cls._create(cert_path, key_path, whole_days(ca_days, "ca_days"), utc(now))
        elif have_cert != have_key:
            present, missing = (cert_path, key_path) if have_cert else (key_path, cert_path)
            raise CertificateError(
                f"{missing} is missing but {present} exists: restore it, or remove both to "
                "make a new CA (every certificate the old one issued will then be refused)"
            )
        key, certificate = read_private_key(key_path), read_certificate(cert_path)
        if not key_matches(key, certificate):
            raise CertificateError(f"{key_path} is not the key of {cert_path}")
        return cls(directory, key, certificate, bucket)

    @staticmethod
    def _create(cert_path: Path, key_path: Path, days: int, now: datetime) -> None:
        key = new_key()
        name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, f"wothub CA {secrets.token_hex(4)}")]
        )
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(random_serial())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, signature_hash(key))
        )
        # Key first: a crash in between leaves a key without a certificate, which
        # load_or_create refuses rather than silently making a second CA.
        write_file(key_path, private_pem(key), PRIVATE_MODE)
        write_file(cert_path, certificate.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE)
        log.info("created the hub CA %r in %s", name.rfc4514_string(), cert_path.parent)

    @property
    def ca_cert_pem(self) -> bytes:
        return self._ca_cert_pem

    @property
    def ca_cert_path(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def server_cert_path(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key_path(self) -> Path:
        return self.directory / "server.key"

    # -- the server certificate ----------------------------------------------------------

    def ensure_server_certificate(
        self,
        names: list[str],
        *,
        days: int = 397,
        renew_within_days: int = 30,
        now: datetime | None = None,
    ) -> ServerCertificate:
        """Keep the server certificate on disk if it is this CA's, has its key, covers
        exactly the loopback names, this host's name and ``names``, and has more than
        ``renew_within_days`` left; otherwise issue a new one with a new key."""
        return self._ensure_certificate(
            "server",
            self.server_cert_path,
            self.server_key_path,
            f"wothub {socket.gethostname()}",
            [ExtendedKeyUsageOID.SERVER_AUTH],
            names,
            days,
            renew_within_days,
            now,
        )

    @property
    def node_cert_path(self) -> Path:
        return self.directory / "node.pem"

    @property
    def node_key_path(self) -> Path:
        return self.directory / "node.key"

    def ensure_node_certificate(
        self,
        node: str,
        names: list[str],
        *,
        days: int = 397,
        renew_within_days: int = 30,
        now: datetime | None = None,
    ) -> ServerCertificate:
        """The cluster node certificate (``node.pem``), kept or (re)issued as the server
        certificate is. It serves both ends of a route between two nodes' nats-servers,
        each verifying the other against this CA, so it has the server and the client
        usage; its CN names the node."""
        return self._ensure_certificate(
            "node",
            self.node_cert_path,
            self.node_key_path,
            f"wothub node {node}",
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            names,
            days,
            renew_within_days,
            now,
        )

    def _ensure_certificate(
        self,
        kind: str,
        cert_path: Path,
        key_path: Path,
        common_name: str,
        usages: list[x509.ObjectIdentifier],
        names: list[str],
        days: int,
        renew_within_days: int,
        now: datetime | None,
    ) -> ServerCertificate:
        days = whole_days(days, "days")
        within = whole_days(renew_within_days, "renew_within_days", minimum=0)
        if within >= days:
            raise CertificateError(
                f"renew_within_days ({within}) must be less than days ({days}), or every "
                f"start would issue a new {kind} certificate"
            )
        moment = utc(now)
        wanted = wanted_names(names)
        reason, current = why_renew(
            cert_path, key_path, self.certificate, wanted, moment, timedelta(days=within)
        )
        if current is None:
            key = new_key()
            current = self._sign(
                key.public_key(),
                common_name[:MAX_CN_LENGTH],
                moment,
                days,
                [
                    (x509.SubjectAlternativeName(wanted), False),
                    (x509.ExtendedKeyUsage(usages), False),
                ],
            )
            # Key first: a crash in between leaves a pair that does not match, which the
            # next call notices and replaces.
            write_file(key_path, private_pem(key), PRIVATE_MODE)
            write_file(cert_path, current.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE)
            log.info(
                "issued the %s certificate %s (%s), valid until %s",
                kind,
                serial_hex(current.serial_number),
                reason,
                rfc3339(current.not_valid_after_utc),
            )
        return ServerCertificate(
            cert_path=cert_path,
            key_path=key_path,
            serial=current.serial_number,
            not_after=current.not_valid_after_utc,
            names=tuple(show(name) for name in wanted),
            issued=reason is not None,
            reason=reason or "still valid",
        )

    def ssl_context_for_server(self) -> ssl.SSLContext:
        """A TLS server context with the server certificate that asks for, but does not
        require, a client certificate from this CA (optional mTLS). OpenSSL checks the
        chain and validity during the handshake; revocation is not checked there, so pass
        the peer certificate to ``verify_client_certificate``."""
        if not (self.server_cert_path.exists() and self.server_key_path.exists()):
            raise CertificateError(
                f"no server certificate in {self.directory}: call ensure_server_certificate"
            )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert_path, self.server_key_path)
        context.load_verify_locations(cafile=self.ca_cert_path)
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    # -- client certificates -------------------------------------------------------------

    def issue_from_csr(
        self,
        csr_pem: bytes,
        client_id: str,
        *,
        days: int = 365,
        now: datetime | None = None,
    ) -> IssuedCertificate:
        """Sign the CSR's public key for ``client_id``. The CSR's subject is ignored: the
        certificate's CN is ``client_id``."""
        if isinstance(csr_pem, str):
            csr_pem = csr_pem.encode()
        try:
            csr = x509.load_pem_x509_csr(bytes(csr_pem))
        except (ValueError, TypeError):
            raise CertificateError(
                "not a certificate signing request: expected PEM "
                "(-----BEGIN CERTIFICATE REQUEST-----)"
            ) from None
        try:
            public_key = csr.public_key()
        except (UnsupportedAlgorithm, ValueError) as exc:
            raise CertificateError(f"unsupported key type in the CSR: {exc}") from None
        check_client_key(public_key)
        try:
            signature_valid = csr.is_signature_valid
        except (UnsupportedAlgorithm, ValueError):
            signature_valid = False
        if not signature_valid:
            raise CertificateError(
                "the CSR's signature is invalid: it was altered, or not signed with its own key"
            )
        return self._issue_client(public_key, client_id, days, now)

    def generate_for(
        self, client_id: str, *, days: int = 365, now: datetime | None = None
    ) -> tuple[IssuedCertificate, bytes]:
        """A new P-256 key pair and its certificate; the private key (PKCS#8 PEM, not
        encrypted) is returned once and not kept anywhere by the hub."""
        key = new_key()
        issued = self._issue_client(key.public_key(), client_id, days, now)
        return issued, private_pem(key)

    def list_issued(self, client_id: str | None = None) -> list[IssuedCertificate]:
        """Every issued client certificate, or one client's, oldest first."""
        return self._records.list(client_id)

    def revoke(self, serial: int, *, now: datetime | None = None) -> IssuedCertificate:
        """Revoke for good; revoking again changes nothing. Unknown serial: CertificateError."""
        issued = self._records.revoke(serial, utc(now))
        log.info("revoked certificate %s of %s", serial_hex(issued.serial), issued.client_id)
        self._revoked([issued])
        return issued

    def revoke_client(
        self, client_id: str, *, now: datetime | None = None
    ) -> list[IssuedCertificate]:
        """Revoke every certificate of ``client_id`` (e.g. when the client is removed, so a
        later client of the same id does not inherit them); returns those newly revoked."""
        revoked = self._records.revoke_client(client_id, utc(now))
        self._revoked(revoked)
        return revoked

    def follow_other_nodes(self, loop: asyncio.AbstractEventLoop) -> None:
        """A certificate revoked by another node (a shared store, cluster mode) ends
        here too: ``on_revoked`` is told as for a revocation made here. (Verification
        reads the shared record, so it refuses the certificate as soon as the store has
        the change.) The work is done on ``loop``."""
        self._records.bucket.on_change(self._changed_elsewhere, loop)

    def _changed_elsewhere(self, key: str) -> None:
        serial = self._records.serial_of(key)
        issued = None if serial is None else self._records.get(serial)
        if issued is not None and issued.revoked:
            self._revoked([issued])

    def _revoked(self, revoked: list[IssuedCertificate]) -> None:
        # Once per certificate: a change reported late reads the record as it is now,
        # so both the issue and the revocation of a certificate may read "revoked".
        revoked = [issued for issued in revoked if issued.serial not in self._told_revoked]
        self._told_revoked.update(issued.serial for issued in revoked)
        if self.on_revoked is not None:
            for issued in revoked:
                self.on_revoked(issued)

    def verify_client_certificate(
        self, cert: bytes | x509.Certificate, *, now: datetime | None = None
    ) -> str:
        """The client id of a certificate this CA issued to a client, still valid and not
        revoked; otherwise CertificateError saying which check failed. Whether that client
        still exists and is enabled is for the auth package to check."""
        certificate = parse_certificate(cert)
        if certificate.issuer != self.certificate.subject:
            raise CertificateError(
                f"signed by another CA ({certificate.issuer.rfc4514_string()}), not this hub's"
            )
        try:
            certificate.verify_directly_issued_by(self.certificate)
        except (InvalidSignature, ValueError, TypeError):
            raise CertificateError(
                "signed by another CA: the issuer name is this hub's but the signature does "
                "not verify with its key"
            ) from None
        if not is_client_certificate(certificate):
            raise CertificateError("not a client certificate (no clientAuth extended key usage)")
        moment = utc(now)
        if moment < certificate.not_valid_before_utc:
            raise CertificateError(
                f"not yet valid: valid from {rfc3339(certificate.not_valid_before_utc)}"
            )
        if moment > certificate.not_valid_after_utc:
            raise CertificateError(f"expired on {rfc3339(certificate.not_valid_after_utc)}")
        serial = certificate.serial_number
        issued = self._records.get(serial)
        if issued is None or issued.cert_pem != certificate.public_bytes(
            serialization.Encoding.PEM
        ):
            raise CertificateError(
                f"unknown serial {serial_hex(serial)}: not in this hub's record of issued "
                "certificates"
            )
        if issued.revoked:
            when = f" on {rfc3339(issued.revoked_at)}" if issued.revoked_at else ""
            raise CertificateError(f"revoked{when} (serial {serial_hex(serial)})")
        return issued.client_id

    # -- internals -----------------------------------------------------------------------

    def _issue_client(
        self,
        public_key: CertificatePublicKeyTypes,
        client_id: str,
        days: int,
        now: datetime | None,
    ) -> IssuedCertificate:
        check_client_id(client_id)
        days = whole_days(days, "days")
        certificate = self._sign(
            public_key,
            client_id,
            utc(now),
            days,
            [(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)],
        )
        issued = IssuedCertificate(
            serial=certificate.serial_number,
            client_id=client_id,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            cert_pem=certificate.public_bytes(serialization.Encoding.PEM),
        )
        self._records.add(issued)
        log.info(
            "issued certificate %s to %s, valid until %s",
            serial_hex(issued.serial),
            client_id,
            rfc3339(issued.not_after),
        )
        return issued

    def _sign(
        self,
        public_key: CertificatePublicKeyTypes,
        common_name: str,
        now: datetime,
        days: int,
        extensions: list[tuple[x509.ExtensionType, bool]],
    ) -> x509.Certificate:
        """An end-entity certificate valid from ``now`` minus BACKDATE for ``days``, but
        never past the CA's own expiry."""
        ca_expires = self.certificate.not_valid_after_utc
        if now >= ca_expires:
            raise CertificateError(f"the hub CA expired on {rfc3339(ca_expires)}")
        aki = x509.AuthorityKeyIdentifier
        try:
            ca_key_id = self.certificate.extensions.get_extension_for_class(
                x509.SubjectKeyIdentifier
            )
            authority_key_id = aki.from_issuer_subject_key_identifier(ca_key_id.value)
        except x509.ExtensionNotFound:  # a CA not made here
            # The CA key's public half: the certificate's key (load_or_create checked they
            # match), typed as a key that can issue certificates.
            authority_key_id = aki.from_issuer_public_key(self._key.public_key())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(random_serial())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(min(now + timedelta(days=days), ca_expires))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(authority_key_id, critical=False)
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(self._key, signature_hash(self._key))
