"""RFC 6242 framing: EOM (base:1.0), chunked (base:1.1), the hello switch, N3/N4/N5 input."""

from __future__ import annotations

import time

import pytest

from flowtap.errors import NetconfRpcError, SessionTerminated
from flowtap.netconf.framing import (
    EOM,
    MAX_CHUNK_SIZE,
    FrameDecoder,
    encode_chunked,
    encode_eom,
)
from flowtap.netconf.xmlparse import parse_message

HELLO = b'<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>'
RPC1 = b'<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>'
RPC2 = b'<rpc message-id="2" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>'


def eom_decoder(max_message: int = 1 << 20) -> FrameDecoder:
    """A decoder past the hello, in base:1.0 framing."""
    dec = FrameDecoder(max_message)
    assert dec.feed(HELLO + EOM) == [HELLO]
    assert dec.feed(b"") == []
    return dec


def chunked_decoder(max_message: int = 1 << 20) -> FrameDecoder:
    dec = FrameDecoder(max_message)
    assert dec.feed(HELLO + EOM) == [HELLO]
    assert dec.start_chunked() == []
    return dec


def feed_all(dec: FrameDecoder, pieces: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for piece in pieces:
        out += dec.feed(piece)
    return out


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# --- base:1.0 end-of-message framing -------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (RPC1 + EOM, [RPC1]),
        (RPC1 + EOM + RPC2 + EOM, [RPC1, RPC2]),
        (RPC1 + EOM + b"\n" + RPC2 + EOM + b"\n", [RPC1, RPC2]),  # newline after delimiter
        (b"\r\n  " + RPC1 + EOM, [RPC1]),
        (EOM + b"\n" + EOM + RPC1 + EOM, [RPC1]),  # empty messages are dropped
        (RPC1 + EOM + RPC2, [RPC1]),  # RPC2 incomplete
        (b"<a>]]></a>" + EOM, [b"<a>]]></a>"]),  # a partial delimiter inside the message
        (b"<a>]]>]]</a>" + EOM, [b"<a>]]>]]</a>"]),
    ],
    ids=[
        "one",
        "two",
        "newline-after-eom",
        "leading-blanks",
        "empty",
        "partial",
        "cdata-end",
        "near",
    ],
)
def test_eom_decode_all_slicings(stream: bytes, expected: list[bytes]) -> None:
    assert feed_all(eom_decoder(), [stream]) == expected
    assert feed_all(eom_decoder(), bytewise(stream)) == expected
    for cut in range(len(stream) + 1):
        assert feed_all(eom_decoder(), [stream[:cut], stream[cut:]]) == expected


def test_eom_in_message_tracks_partial_message() -> None:
    dec = eom_decoder()
    assert not dec.in_message
    dec.feed(RPC1[:10])
    assert dec.in_message
    dec.feed(RPC1[10:] + EOM + b"\n")
    assert not dec.in_message
    assert not dec.chunked


def test_eom_delimiter_split_across_feeds_at_every_offset() -> None:
    for cut in range(1, len(EOM)):
        dec = eom_decoder()
        assert dec.feed(RPC1 + EOM[:cut]) == []
        assert dec.feed(EOM[cut:]) == [RPC1]


@pytest.mark.parametrize(
    "message",
    [
        b'<rpc message-id="1"><!-- ]]>]]> --><get/></rpc>',
        b'<rpc message-id="1" x="]]>]]>"><get/></rpc>',
        b'<rpc message-id="1"><?pi ]]>]]>?><get/></rpc>',
    ],
    ids=["comment", "attribute", "pi"],
)
def test_N3_eom_delimiter_inside_markup_splits_and_parse_fails_cleanly(message: bytes) -> None:
    # base:1.0 cannot carry the delimiter; both halves must fail as malformed-message, not crash.
    pieces = eom_decoder().feed(message + EOM)
    assert len(pieces) == 2
    for piece in pieces:
        with pytest.raises(NetconfRpcError) as err:
            parse_message(piece)
        assert err.value.tag == "malformed-message"


@pytest.mark.parametrize("size", [99, 100])
def test_N5_eom_message_at_the_cap_is_accepted(size: int) -> None:
    dec = eom_decoder(100)
    body = b"x" * size
    assert dec.feed(body + EOM) == [body]


def test_N5_eom_message_over_the_cap_terminates() -> None:
    dec = eom_decoder(100)
    with pytest.raises(SessionTerminated):
        dec.feed(b"x" * 101 + EOM)
    with pytest.raises(SessionTerminated):
        dec.feed(b"")  # the decoder stays broken


def test_N5_eom_trickle_without_delimiter_terminates_once_past_cap() -> None:
    dec = eom_decoder(100)
    dec.feed(b"x" * 100)
    dec.feed(b"]]>]]")  # could still be the delimiter: keep waiting
    with pytest.raises(SessionTerminated):
        dec.feed(b"y")


def test_N5_eom_cap_applies_to_each_message_not_the_stream() -> None:
    dec = eom_decoder(100)
    body = b"x" * 90
    assert feed_all(dec, [(body + EOM) * 50]) == [body] * 50


def test_eom_decoding_is_linear_in_input() -> None:
    # Re-scanning the whole buffer per feed would search ~8 GiB here; linear search reads 4 MiB.
    dec = eom_decoder(8 << 20)
    piece = b"a" * 1024
    start = time.perf_counter()
    for _ in range(4096):
        assert dec.feed(piece) == []
    messages = dec.feed(EOM)
    elapsed = time.perf_counter() - start
    assert len(messages) == 1 and len(messages[0]) == 4 << 20
    # a re-scan per feed would take minutes here; linear decoding takes milliseconds
    assert elapsed < 30


# --- hello and the switch to base:1.1 -------------------------------------------------------


def test_hello_alone_then_chunked() -> None:
    dec = FrameDecoder()
    assert dec.feed(HELLO[:5]) == []
    assert dec.in_message
    assert dec.feed(HELLO[5:] + EOM) == [HELLO]
    assert dec.start_chunked() == []
    assert dec.chunked
    assert dec.feed(encode_chunked(RPC1)) == [RPC1]


def test_bytes_after_hello_are_held_then_decoded_as_chunks() -> None:
    dec = FrameDecoder()
    stream = HELLO + EOM + encode_chunked(RPC1) + encode_chunked(RPC2)[:7]
    assert dec.feed(stream) == [HELLO]  # nothing after the hello is decoded yet
    assert dec.start_chunked() == [RPC1]
    assert dec.feed(encode_chunked(RPC2)[7:]) == [RPC2]


def test_bytes_after_hello_are_held_then_decoded_as_eom() -> None:
    dec = FrameDecoder()
    assert dec.feed(HELLO + EOM + RPC1 + EOM + RPC2[:3]) == [HELLO]
    assert dec.feed(b"") == [RPC1]
    assert dec.feed(RPC2[3:] + EOM) == [RPC2]
    assert dec.encode(b"<x/>") == b"<x/>" + EOM


def test_chunk_that_looks_like_eom_after_hello_is_not_split() -> None:
    # Had the held bytes been EOM-decoded before the switch, this chunk would have been cut.
    body = b"<rpc><a>]]>]]></a></rpc>"
    dec = FrameDecoder()
    assert dec.feed(HELLO + EOM + encode_chunked(body)) == [HELLO]
    assert dec.start_chunked() == [body]


def test_N5_bytes_held_after_hello_are_capped() -> None:
    dec = FrameDecoder(100)
    with pytest.raises(SessionTerminated):
        dec.feed(HELLO + EOM + b"x" * 101)


def test_start_chunked_in_the_middle_of_the_hello_is_a_bug() -> None:
    dec = FrameDecoder()
    dec.feed(HELLO[:4])
    with pytest.raises(RuntimeError):
        dec.start_chunked()
    dec2 = eom_decoder()
    dec2.feed(RPC1 + EOM)
    with pytest.raises(RuntimeError):
        dec2.start_chunked()


@pytest.mark.parametrize("blank", [b"", b" ", b"\r\n", b"\n  \t"])
def test_blank_messages_before_the_hello_are_dropped(blank: bytes) -> None:
    # Found by tests/fuzz (netconf_framing): a blank first message used to end the hello phase,
    # so the session's start_chunked() on the real hello raised RuntimeError.
    dec = FrameDecoder()
    assert dec.feed(blank + EOM + HELLO + EOM + encode_chunked(RPC1)) == [HELLO]
    assert dec.start_chunked() == [RPC1]
    dec = FrameDecoder()
    assert dec.feed(blank + EOM) == []
    assert dec.feed(HELLO + EOM) == [HELLO]
    assert dec.start_chunked() == []
    assert dec.feed(encode_chunked(RPC1)) == [RPC1]


def test_start_chunked_after_the_hello_broke_the_framing_terminates() -> None:
    # Found by tests/fuzz (netconf_framing): bytes held after the hello over the cap break the
    # decoder in the same feed that returns the hello; the session then switches framing.
    dec = FrameDecoder(100)
    with pytest.raises(SessionTerminated) as caught:
        dec.feed(HELLO + EOM + b"x" * 101)
    assert getattr(caught.value, "completed", None) == [HELLO]
    with pytest.raises(SessionTerminated):
        dec.start_chunked()


def test_start_chunked_is_idempotent() -> None:
    dec = chunked_decoder()
    assert dec.start_chunked() == []
    assert dec.encode(b"<x/>") == b"\n#4\n<x/>\n##\n"


# --- base:1.1 chunked framing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"\n#4\n<a/>\n##\n", [b"<a/>"]),
        (b"\n#2\n<a\n#2\n/>\n##\n", [b"<a/>"]),
        (b"\n#1\n<\n#1\na\n#1\n/\n#1\n>\n##\n", [b"<a/>"]),
        (b"\n#4\n<a/>\n##\n\n#4\n<b/>\n##\n", [b"<a/>", b"<b/>"]),
        (b"\n#10\n0123456789\n##\n", [b"0123456789"]),
        (b"\n#6\n]]>]]>\n##\n"[:0] + b"\n#6\n]]>]]>\n##\n", [b"]]>]]>"]),  # delimiter as data
        (b"\n#3\n\n#\n\n##\n", [b"\n#\n"]),  # header-like data inside a chunk
        (b"\n#4\n<a/>\n##\n\n#4\n<b", [b"<a/>"]),
    ],
    ids=[
        "one",
        "two-chunks",
        "tiny-chunks",
        "two-messages",
        "two-digits",
        "eom-as-data",
        "header-as-data",
        "partial",
    ],
)
def test_chunked_decode_all_slicings(stream: bytes, expected: list[bytes]) -> None:
    assert feed_all(chunked_decoder(), [stream]) == expected
    assert feed_all(chunked_decoder(), bytewise(stream)) == expected
    for cut in range(len(stream) + 1):
        assert feed_all(chunked_decoder(), [stream[:cut], stream[cut:]]) == expected


def test_chunked_in_message() -> None:
    dec = chunked_decoder()
    assert not dec.in_message
    dec.feed(b"\n#")
    assert dec.in_message
    dec.feed(b"4\n<a/>")
    assert dec.in_message
    dec.feed(b"\n##")
    assert dec.in_message
    assert dec.feed(b"\n") == [b"<a/>"]
    assert not dec.in_message


def test_chunked_largest_legal_chunk_size_is_accepted_without_allocating() -> None:
    # 4294967295 is legal (RFC 6242 §4.2); the decoder must not reserve it up front.
    dec = chunked_decoder(max_message=MAX_CHUNK_SIZE)
    assert dec.feed(b"\n#4294967295\nabc") == []
    assert dec.in_message


N4_BAD_HEADERS = [
    (b"\n#04\n<a/>\n##\n", "leading-zero"),
    (b"\n#0\n\n##\n", "zero"),
    (b"\n#00\n", "double-zero"),
    (b"\n#a\n", "non-digit"),
    (b"\n#4a\n", "digit-then-letter"),
    (b"\n# 4\n", "space-before-size"),
    (b"\n#4 \n", "space-after-size"),
    (b"\n#-4\n", "negative"),
    (b"\n#+4\n", "plus-sign"),
    (b"\n#\xd9\xa4\n", "non-ascii-digit"),
    (b"\n#4294967296\n", "above-max"),
    (b"\n#9999999999\n", "ten-digits-above-max"),
    (b"\n#12345678901\n", "eleven-digits"),
    (b"\n#100000000000000000000", "many-digits-no-lf"),
    (b"\n#4<a/>\n##\n", "missing-lf-after-size"),
    (b"\n#4\r\n<a/>\n##\n", "crlf-after-size"),
    (b"\r\n#4\n<a/>\n##\n", "crlf-before-hash"),
    (b"#4\n<a/>\n##\n", "missing-leading-lf"),
    (b"\n\n#4\n", "double-lf"),
    (b"\n##\n", "end-of-chunks-without-chunk"),
    (b"\n#\n", "empty-size"),
    (b"\n##x", "bad-end-of-chunks"),
    (b"\n#4\n<a/>\n#\n", "end-marker-missing-hash"),
    (b"\n#4\n<a/>##\n", "end-marker-missing-lf"),
    (b"\n#4\n<a/>\n##\n \n#4\n<a/>\n##\n", "blank-between-messages"),
    (b"<rpc/>]]>]]>", "eom-after-1.1"),
    (b"\n#4\n<a/>]]>]]>", "eom-instead-of-end-of-chunks"),
]


@pytest.mark.parametrize(
    "stream", [s for s, _ in N4_BAD_HEADERS], ids=[i for _, i in N4_BAD_HEADERS]
)
def test_N4_invalid_chunk_framing_terminates(stream: bytes) -> None:
    with pytest.raises(SessionTerminated):
        feed_all(chunked_decoder(), [stream])
    with pytest.raises(SessionTerminated):
        feed_all(chunked_decoder(), bytewise(stream))


def test_N4_error_message_does_not_echo_input() -> None:
    with pytest.raises(SessionTerminated) as err:
        chunked_decoder().feed(b"\n#SECRET\n")
    assert "SECRET" not in str(err.value)


def test_N4_decoder_stays_broken_after_a_framing_error() -> None:
    dec = chunked_decoder()
    with pytest.raises(SessionTerminated):
        dec.feed(b"\n#0\n")
    with pytest.raises(SessionTerminated):
        dec.feed(encode_chunked(RPC1))


def test_N5_huge_announced_chunk_terminates_before_any_data() -> None:
    dec = chunked_decoder(max_message=1 << 20)
    with pytest.raises(SessionTerminated):
        dec.feed(b"\n#4294967295\n")


def test_N5_many_small_chunks_past_the_cap_terminate() -> None:
    dec = chunked_decoder(max_message=100)
    assert dec.feed(b"\n#10\n0123456789" * 10) == []
    with pytest.raises(SessionTerminated):
        dec.feed(b"\n#1\nx")


def test_N5_chunked_cap_is_per_message() -> None:
    dec = chunked_decoder(max_message=100)
    body = b"x" * 100
    assert feed_all(dec, [encode_chunked(body, max_chunk=7)] * 20) == [body] * 20


def test_chunked_large_message_round_trip() -> None:
    body = bytes(range(256)) * 8192  # 2 MiB, every byte value
    framed = encode_chunked(body, max_chunk=65536)
    dec = chunked_decoder(max_message=4 << 20)
    out = feed_all(dec, [framed[i : i + 32768] for i in range(0, len(framed), 32768)])
    assert out == [body]


def test_chunked_single_chunk_message_is_not_copied() -> None:
    dec = chunked_decoder()
    assert dec.feed(b"\n#4\n") == []
    data = b"<a/>"
    dec.feed(data)
    (message,) = dec.feed(b"\n##\n")
    assert message is data


# --- encoders -------------------------------------------------------------------------------


@pytest.mark.parametrize("max_chunk", [1, 2, 3, 7, 64, MAX_CHUNK_SIZE])
def test_encode_chunked_round_trip(max_chunk: int) -> None:
    framed = encode_chunked(RPC1, max_chunk=max_chunk)
    assert framed.endswith(b"\n##\n")
    assert chunked_decoder().feed(framed) == [RPC1]


def test_encode_chunked_exact_bytes() -> None:
    assert encode_chunked(b"<a/>") == b"\n#4\n<a/>\n##\n"
    assert encode_chunked(b"abc", max_chunk=2) == b"\n#2\nab\n#1\nc\n##\n"


@pytest.mark.parametrize("max_chunk", [0, MAX_CHUNK_SIZE + 1])
def test_encode_chunked_rejects_bad_chunk_size(max_chunk: int) -> None:
    with pytest.raises(ValueError):
        encode_chunked(b"x", max_chunk=max_chunk)


def test_encode_chunked_rejects_empty_message() -> None:
    with pytest.raises(ValueError):
        encode_chunked(b"")


def test_encode_eom() -> None:
    assert encode_eom(RPC1) == RPC1 + EOM
    assert eom_decoder().feed(encode_eom(RPC1)) == [RPC1]
    with pytest.raises(ValueError):
        encode_eom(b"<a><!-- ]]>]]> --></a>")


def test_decoder_rejects_non_positive_cap() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(0)
