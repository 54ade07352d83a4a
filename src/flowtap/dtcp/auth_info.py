"""``Authentication-Info``: HMAC-SHA1 over a DTCP message (draft §4.4.2, fact sheet §1.6, §9.3).

The digest covers the exact bytes from the first byte of the request or status line up to and
including the CRLF of the line just before ``Authentication-Info``; the value is 40 lowercase hex
characters. Over SSH the key is the literal ``Juniper`` (both Juniper clients hard-code it, and
Junos-signed replies in the documentation verify with it); in UDP/DFC mode it is the control
source's shared key.

Decisions:
- Verification accepts upper-case hex from clients (the comparison is on the lower-cased value) and
  is constant-time. Whether a failed check is fatal is the session's policy, not this module's:
  over SSH the key is public, so the check proves integrity of framing, not identity.
- A message without ``Authentication-Info`` never verifies.
"""

from __future__ import annotations

import hashlib
import hmac

from flowtap.dtcp.message import Request

SSH_KEY = b"Juniper"
REPLY_HEADER = "AUTHENTICATION-INFO"
DIGEST_HEX_LENGTH = 40


class Signer:
    """HMAC-SHA1 with one key; the keyed state is computed once and copied per message."""

    __slots__ = ("_keyed",)

    def __init__(self, key: bytes) -> None:
        self._keyed = hmac.new(key, digestmod=hashlib.sha1)

    def __repr__(self) -> str:
        return "Signer(<key hidden>)"

    def digest(self, signed: bytes) -> str:
        """The 40 lowercase hex characters of HMAC-SHA1(key, signed)."""
        mac = self._keyed.copy()
        mac.update(signed)
        return mac.hexdigest()

    def sign(self, head: bytes, header_name: str = REPLY_HEADER) -> bytes:
        """``head`` (every line CRLF-terminated) plus the signature line and the closing blank line.

        The header name is outside the signed bytes, so Junos' upper-case spelling does not
        change the digest.
        """
        return b"%s%s: %s\r\n\r\n" % (head, header_name.encode("ascii"), self.digest(head).encode())

    def start(self) -> hmac.HMAC:
        """A keyed HMAC to ``update`` with a message written in pieces; end it with
        :meth:`trailer`. The pieces joined and the trailer are exactly what :meth:`sign` makes."""
        return self._keyed.copy()

    @staticmethod
    def trailer(mac: hmac.HMAC, header_name: str = REPLY_HEADER) -> bytes:
        return b"%s: %s\r\n\r\n" % (header_name.encode("ascii"), mac.hexdigest().encode())

    def verify(self, signed: bytes, authentication_info: str | None) -> bool:
        if authentication_info is None or len(authentication_info) != DIGEST_HEX_LENGTH:
            return False
        expected = self.digest(signed).encode("ascii")
        try:
            presented = authentication_info.lower().encode("ascii")
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(expected, presented)


SSH_SIGNER = Signer(SSH_KEY)


def verify_request(request: Request, signer: Signer = SSH_SIGNER) -> bool:
    """Whether the request's ``Authentication-Info`` matches the bytes that precede it."""
    return signer.verify(request.signed_bytes, request.authentication_info)
