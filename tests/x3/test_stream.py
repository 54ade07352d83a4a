"""The X3 stream decoder: whole PDUs from arbitrary pieces, bounded, failing for good."""

from __future__ import annotations

import random

import pytest

from flowtap.dataplane.x3 import pdu
from flowtap.dataplane.x3.stream import X3StreamDecoder
from flowtap.dataplane.x3.template import X3Template
from flowtap.errors import X3Error

from .test_pdu import INNER4, INNER6, XCC_VECTOR, XID


def _stream() -> tuple[bytes, list[pdu.Pdu]]:
    template = X3Template(XID, bytes(8))
    out = bytearray()
    for sequence in range(50):
        template.append_to(out, INNER4 if sequence % 3 else INNER6, 2 + sequence % 2, sequence,
                           sequence * 1_000_001)  # fmt: skip
        if sequence % 10 == 0:
            out += pdu.keepalive(sequence)
    data = bytes(out)
    whole = X3StreamDecoder().feed(data)
    return data, whole


@pytest.mark.parametrize("seed", range(20))
def test_any_slicing_gives_the_same_pdus(seed):
    data, whole = _stream()
    rng = random.Random(seed)
    decoder = X3StreamDecoder()
    got = []
    pos = 0
    while pos < len(data):
        step = rng.choice([1, 2, 5, 11, 12, 13, 59, 60, 61, 300])
        got += decoder.feed(data[pos:pos + step])
        pos += step
    assert got == whole
    assert len(whole) == 55 and decoder.buffered == 0
    assert [p.sequence_number for p in whole if p.pdu_type == 2] == list(range(50))


def test_partial_pdu_waits():
    decoder = X3StreamDecoder()
    assert decoder.feed(XCC_VECTOR[:-1]) == []
    assert decoder.buffered == len(XCC_VECTOR) - 1
    assert decoder.feed(XCC_VECTOR[-1:]) == [pdu.decode(XCC_VECTOR)]


def test_absurd_length_is_refused_from_the_prefix_alone():
    decoder = X3StreamDecoder(max_payload_length=65535)
    prefix = bytes.fromhex("0005" "0002" "0000003c" "7fffffff")
    with pytest.raises(X3Error, match="payload length"):
        decoder.feed(prefix)
    assert decoder.buffered == 0


def test_header_length_bound():
    decoder = X3StreamDecoder(max_header_length=100)
    with pytest.raises(X3Error, match="header length"):
        decoder.feed(bytes.fromhex("0005" "0002" "00000100" "00000000"))


def test_bad_version_fails_for_good():
    decoder = X3StreamDecoder()
    assert decoder.feed(XCC_VECTOR) == [pdu.decode(XCC_VECTOR)]
    with pytest.raises(X3Error, match="version"):
        decoder.feed(b"\x00\x04" + XCC_VECTOR[2:])
    with pytest.raises(X3Error, match="version"):
        decoder.feed(XCC_VECTOR)


def test_bad_attribute_inside_a_whole_pdu_fails():
    decoder = X3StreamDecoder()
    broken = XCC_VECTOR[:40] + b"\x00\x00" + XCC_VECTOR[42:]
    with pytest.raises(X3Error, match="attribute type 0"):
        decoder.feed(broken + XCC_VECTOR)
    assert decoder.buffered == 0


def test_random_bytes_raise_only_x3_error():
    rng = random.Random(7)
    for _ in range(2000):
        decoder = X3StreamDecoder()
        data = bytearray(XCC_VECTOR)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            for piece in (data[:rng.randrange(len(data))], data):
                for item in decoder.feed(piece):
                    assert pdu.encode(item) is not None
        except X3Error:
            pass


def test_pdus_before_an_error_in_the_same_chunk_are_delivered():
    decoder = X3StreamDecoder()
    assert decoder.feed(XCC_VECTOR + b"\x00\x04" + bytes(10)) == [pdu.decode(XCC_VECTOR)]
    assert decoder.error is not None and "version" in str(decoder.error)
    with pytest.raises(X3Error, match="version"):
        decoder.feed(b"")
