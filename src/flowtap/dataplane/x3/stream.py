"""Whole PDUs out of a byte stream that arrives in arbitrary pieces (X2/X3 over TLS). Pure.

The stream is PDUs back to back with no other framing (fact sheet §3.3): read 12 bytes, then
wait for header length + payload length in total. The 12-byte prefix is checked as soon as it
is complete, so a bad version or an absurd length is refused before anything is buffered for
it; the bounds are the receiver's (the lengths are 32-bit fields). After an error the stream
cannot be resynchronised: the decoder stays failed and the caller closes the connection. PDUs
completed before the error are still delivered: a call that completes some and then meets the
error returns them and leaves the error in :attr:`error`, raised by the next call.
"""

from __future__ import annotations

from typing import Final

from flowtap.dataplane.x3.pdu import PREFIX, Pdu, check_prefix, decode
from flowtap.errors import X3Error

DEFAULT_MAX_HEADER_LENGTH: Final = 16 * 1024  # 40 + attributes; SDP and XML targets are small
DEFAULT_MAX_PAYLOAD_LENGTH: Final = 256 * 1024  # an IP packet is at most 65535 bytes


class X3StreamDecoder:
    def __init__(self, max_header_length: int = DEFAULT_MAX_HEADER_LENGTH,
                 max_payload_length: int = DEFAULT_MAX_PAYLOAD_LENGTH) -> None:  # fmt: skip
        self.max_header_length = max_header_length
        self.max_payload_length = max_payload_length
        self._buffer = bytearray()
        self._failed: X3Error | None = None

    @property
    def error(self) -> X3Error | None:
        """Why the stream failed, or None while it is good."""
        return self._failed

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet make a whole PDU."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Pdu]:
        """The PDUs completed by ``data``, in order.

        Raises:
            X3Error: a bad version, PDU type or attribute, or a length beyond the bounds, met
                before any PDU of this call was complete; and on every call after a failure.
        """
        if self._failed is not None:
            raise self._failed
        buffer = self._buffer
        buffer += data
        pdus = []
        pos = 0
        try:
            while len(buffer) - pos >= PREFIX.size:
                header_length, payload_length = check_prefix(buffer, pos)
                if header_length > self.max_header_length:
                    raise X3Error(f"header length {header_length} above the receiver's "
                                  f"{self.max_header_length}")  # fmt: skip
                if payload_length > self.max_payload_length:
                    raise X3Error(f"payload length {payload_length} above the receiver's "
                                  f"{self.max_payload_length}")  # fmt: skip
                end = pos + header_length + payload_length
                if end > len(buffer):
                    break
                # A copy, not a view: a view still alive (in a traceback) would pin the
                # bytearray and make the compaction below fail.
                pdus.append(decode(bytes(buffer[pos:end])))
                pos = end
        except X3Error as exc:
            self._failed = exc
            buffer.clear()
            if not pdus:
                raise
            return pdus
        # One compaction per feed, not per PDU: a chunk holding many PDUs stays linear.
        if pos:
            del buffer[:pos]
        return pdus
