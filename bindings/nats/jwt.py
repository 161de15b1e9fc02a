"""The keys and JWTs of NATS auth callout, built with nkeys and PyNaCl.

- nkeys (ed25519): the callout issuer account key (``A...``) signs the responses and the
  user JWTs; the hub's own users (``U...``) log in with signed nonces.
- curve keys (``X...``, x25519): ``xkv1`` encryption of the callout requests and responses,
  which carry passwords. nkeys 0.2 has no curve type, so it is made here: the same base32
  encoding with prefix byte 23 << 3 and a CRC-16, and a NaCl box.
- JWTs: header ``{"typ":"JWT","alg":"ed25519-nkey"}``, base64url without padding, signed
  with the issuer's seed over ``header.payload``.
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

import nkeys
import orjson
from nacl.public import Box, PrivateKey, PublicKey

PREFIX_CURVE = 23 << 3  # "X..."
XKV1 = b"xkv1"
_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}


def _b32(prefix: int, raw: bytes) -> str:
    data = bytearray([prefix]) + raw
    data += nkeys.crc16(data).to_bytes(2, "little")
    return base64.b32encode(bytes(data)).decode().rstrip("=")


def _unb32(text: str, prefix: int) -> bytes:
    data = base64.b32decode(text + "=" * (-len(text) % 8))
    body, crc = data[:-2], int.from_bytes(data[-2:], "little")
    if nkeys.crc16(bytearray(body)) != crc or body[0] != prefix:
        raise ValueError(f"not a valid key: {text[:4]}...")
    return bytes(body[1:])


class SigningKey:
    """An nkey pair: ``new("account")`` or from a seed (``S...``)."""

    _PREFIXES = {"account": nkeys.PREFIX_BYTE_ACCOUNT, "user": nkeys.PREFIX_BYTE_USER}

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self._pair = nkeys.from_seed(seed.encode())
        self.public_key = self._pair.public_key.decode()

    @classmethod
    def new(cls, kind: str) -> SigningKey:
        raw = secrets.token_bytes(32)
        return cls(nkeys.encode_seed(raw, cls._PREFIXES[kind]).decode())

    def sign(self, data: bytes) -> bytes:
        return self._pair.sign(data)


class CurveKey:
    """An x25519 pair for ``xkv1`` encryption; the seed is kept as base64 of 32 bytes."""

    def __init__(self, private: PrivateKey) -> None:
        self._private = private
        self.public_key = _b32(PREFIX_CURVE, bytes(private.public_key))

    @classmethod
    def new(cls) -> CurveKey:
        return cls(PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: str) -> CurveKey:
        return cls(PrivateKey(base64.b64decode(seed)))

    @property
    def seed(self) -> str:
        return base64.b64encode(bytes(self._private)).decode()

    def seal(self, data: bytes, recipient: str) -> bytes:
        box = Box(self._private, PublicKey(_unb32(recipient, PREFIX_CURVE)))
        nonce = secrets.token_bytes(24)
        return XKV1 + nonce + box.encrypt(data, nonce).ciphertext

    def open(self, data: bytes, sender: str) -> bytes:
        if not data.startswith(XKV1) or len(data) < 4 + 24 + 16:
            raise ValueError("not an xkv1 message")
        box = Box(self._private, PublicKey(_unb32(sender, PREFIX_CURVE)))
        return box.decrypt(data[28:], data[4:28])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claims: dict[str, Any], issuer: SigningKey) -> str:
    """A signed JWT; ``iss``, ``iat`` and ``jti`` are filled in."""
    body = {"jti": secrets.token_hex(16), "iat": int(time.time()), "iss": issuer.public_key}
    body.update(claims)
    signing_input = f"{_b64(orjson.dumps(_HEADER))}.{_b64(orjson.dumps(body))}"
    return f"{signing_input}.{_b64(issuer.sign(signing_input.encode()))}"


def decode(token: str | bytes) -> dict[str, Any]:
    """The claims of a JWT, after checking its signature against its ``iss`` key (the
    server's ``N...`` key for callout requests). ValueError when it is not one."""
    text = token.decode() if isinstance(token, bytes) else token
    try:
        header, payload, signature = text.split(".")
        claims = orjson.loads(_unb64(payload))
        if orjson.loads(_unb64(header)).get("alg") not in ("ed25519-nkey", "ed25519"):
            raise ValueError("not an nkey-signed JWT")
        issuer = claims["iss"]
        key = nkeys.KeyPair(keys=_verify_key(issuer))
        key.verify(f"{header}.{payload}".encode(), _unb64(signature))
    except (ValueError, KeyError, TypeError, nkeys.NkeysError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"not a valid JWT: {exc}") from None
    if not isinstance(claims, dict):
        raise ValueError("not a valid JWT: the claims are not an object")
    return claims


def _verify_key(public_key: str):
    from nacl.signing import VerifyKey

    data = base64.b32decode(public_key + "=" * (-len(public_key) % 8))
    if nkeys.crc16(bytearray(data[:-2])) != int.from_bytes(data[-2:], "little"):
        raise ValueError("bad key checksum")

    class _Keys:  # nkeys.KeyPair.verify uses ``keys.verify_key``
        verify_key = VerifyKey(bytes(data[1:-2]))

    return _Keys()
