"""Framing, request line, headers and caps of the DTCP decoder (SECURITY §5.2 D1, D3, D12)."""

from __future__ import annotations

import random

import pytest

from flowtap.dtcp.auth_info import SSH_SIGNER, verify_request
from flowtap.dtcp.headers import CATALOGUED
from flowtap.dtcp.message import (
    MAX_MESSAGE_BYTES,
    DecodeError,
    Headers,
    MessageDecoder,
    Request,
    escape,
    unescape,
    version_tuple,
)


def lines_bytes(*lines: str) -> bytes:
    return "".join(f"{line}\r\n" for line in lines).encode()


def signed(*lines: str) -> bytes:
    """A complete message: the lines, a valid Authentication-Info (key Juniper), the empty line."""
    return SSH_SIGNER.sign(lines_bytes(*lines), "Authentication-Info")


NOOP = ("NOOP DTCP/0.7", "Csource-ID: md1", "Seq: 5")


def decode(data: bytes, chunk: int | None = None) -> list[Request | DecodeError]:
    decoder = MessageDecoder()
    if chunk is None:
        return decoder.feed(data)
    out: list[Request | DecodeError] = []
    for start in range(0, len(data), chunk):
        out += decoder.feed(data[start : start + chunk])
    return out


def only_request(data: bytes) -> Request:
    [result] = decode(data)
    assert isinstance(result, Request), result
    return result


def only_error(data: bytes) -> DecodeError:
    [result] = decode(data)
    assert isinstance(result, DecodeError), result
    return result


# --- framing -------------------------------------------------------------------------------


def test_request_fields_and_signed_bytes() -> None:
    head = lines_bytes(*NOOP)
    request = only_request(signed(*NOOP))
    assert (request.method, request.version, request.version_tuple) == ("NOOP", "0.7", (0, 7))
    assert list(request.headers) == [("Csource-ID", "md1"), ("Seq", "5")]
    assert request.signed_bytes == head
    assert request.authentication_info == SSH_SIGNER.digest(head)
    assert verify_request(request)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 17, 64, 4096, None])
def test_several_messages_per_channel_any_chunking(chunk: int | None) -> None:
    stream = signed(*NOOP) + signed("LIST DTCP/0.8", "Csource-ID: md1", "Seq: 6") + signed(*NOOP)
    results = decode(stream, chunk)
    assert [type(r) for r in results] == [Request, Request, Request]
    assert [r.method for r in results if isinstance(r, Request)] == ["NOOP", "LIST", "NOOP"]
    assert all(verify_request(r) for r in results if isinstance(r, Request))


def test_partial_message_waits_for_the_empty_line() -> None:
    decoder = MessageDecoder()
    message = signed(*NOOP)
    assert decoder.feed(message[:-2]) == []
    assert decoder.pending == len(message) - 2
    assert len(decoder.feed(message[-2:])) == 1
    assert decoder.pending == 0


@pytest.mark.parametrize("prefix", [b"\r\n", b"\r\n\r\n\r\n", b"\n", b"\r\n\n"])
def test_empty_lines_between_messages_are_skipped(prefix: bytes) -> None:
    for chunk in (1, None):
        results = decode(prefix + signed(*NOOP) + prefix + signed(*NOOP), chunk)
        assert [type(r) for r in results] == [Request, Request]


def test_header_names_are_case_insensitive() -> None:
    request = only_request(signed("DELETE DTCP/0.7", "CSOURCE-id: md1", "CRITERIA-ID: 2", "seq: 1"))
    headers = request.headers
    assert headers.get("Criteria-ID") == headers.get("criteria-id") == "2"
    assert "csource-ID" in headers
    assert headers.keys() == frozenset({"csource-id", "criteria-id", "seq"})


@pytest.mark.parametrize(
    ("line", "name", "value"),
    [
        ("Seq: 1", "Seq", "1"),
        ("Seq:1", "Seq", "1"),
        ("Seq \t:\t 1", "Seq", "1"),
        ("Seq: 1 \t ", "Seq", "1"),
        ("Flags: Static, SendAsync", "Flags", "Static, SendAsync"),
        ("X-Empty:", "X-Empty", ""),
        ("Csource-ID: caf\u00e9", "Csource-ID", "caf\u00e9"),
    ],
)
def test_header_syntax_col_and_trailing_whitespace(line: str, name: str, value: str) -> None:
    request = only_request(signed("NOOP DTCP/0.7", line))
    assert list(request.headers) == [(name, value)]


def test_d3_duplicate_csource_id_is_a_400_echoing_the_seq() -> None:
    # SECURITY D3 overrides the fact sheet's "first value wins" (§1.3): never act on one copy
    # while another is logged or checked.
    error = only_error(signed("NOOP DTCP/0.7", "Csource-ID: md1", "Csource-ID: mallory", "Seq: 3"))
    assert (error.status, error.detail, error.seq, error.method) == (
        400, "duplicate header Csource-ID", 3, "NOOP")
    assert error.version == "0.7" and not error.fatal
    assert error.parameters == (("Csource-ID", "mallory"),)  # issue 17 item 6: names the field


@pytest.mark.parametrize("name", sorted(CATALOGUED))
def test_d3_every_catalogued_header_is_single_valued(name: str) -> None:
    error = only_error(signed("ADD DTCP/0.7", "Csource-ID: md1", "Seq: 4", f"{name}: 1",
                              f"{name.upper()}: 1"))
    if name == "seq":
        assert (error.status, error.seq) == (400, None)  # which Seq to echo is ambiguous
    else:
        assert (error.status, error.seq) == (400, 4)
    # Csource-ID and Seq are already there: their second copy is the lower-case line
    repeated = name if name in ("csource-id", "seq") else name.upper()
    assert error.detail == f"duplicate header {repeated}"


@pytest.mark.parametrize("name", ["X-JTap-Made-Up", "Frobnicate", "Authentication-Info-X"])
def test_d3_unknown_non_extension_and_x_jtap_headers_may_not_repeat(name: str) -> None:
    error = only_error(signed(*NOOP, f"{name}: a", f"{name}: b"))
    assert error.status == 400


def test_d3_uncatalogued_x_extensions_may_repeat_and_are_kept_in_order() -> None:
    # draft §6.3: unknown X- headers are ignored without error, however often they appear
    request = only_request(signed(*NOOP, "X-Vendor-Trace: a", "x-vendor-trace: b"))
    assert list(request.headers)[-2:] == [("X-Vendor-Trace", "a"), ("x-vendor-trace", "b")]
    assert request.headers.count("x-vendor-trace") == 2


def test_d3_repeats_after_authentication_info_are_not_interpreted() -> None:
    head = lines_bytes(*NOOP)
    stream = SSH_SIGNER.sign(head, "Authentication-Info")[:-2] + b"Seq: 9\r\nSeq: 9\r\n\r\n"
    assert only_request(stream).headers.get("seq") == "5"


def test_d3_duplicate_is_refused_and_the_next_message_decodes() -> None:
    bad = signed("NOOP DTCP/0.7", "Csource-ID: md1", "csource-id: md1", "Seq: 1")
    first, second = decode(bad + signed(*NOOP), chunk=7)
    assert isinstance(first, DecodeError) and first.status == 400
    assert isinstance(second, Request) and second.headers.get("seq") == "5"


def test_lines_after_authentication_info_are_ignored() -> None:
    head = lines_bytes(*NOOP)
    stream = SSH_SIGNER.sign(head, "Authentication-Info")[:-2] + b"Flags: SendAsync\r\n\r\n"
    request = only_request(stream)
    assert "flags" not in request.headers
    assert request.signed_bytes == head
    assert verify_request(request)


def test_missing_authentication_info_is_framed_but_never_verifies() -> None:
    request = only_request(lines_bytes(*NOOP) + b"\r\n")
    assert request.authentication_info is None
    assert request.signed_bytes == lines_bytes(*NOOP)
    assert not verify_request(request)


def test_repr_never_shows_header_values() -> None:
    # Criteria are confidential (SECURITY LI-2): a logged Request must not carry them.
    request = only_request(signed("ADD DTCP/0.7", "Dest-Address: 192.0.2.77", "Seq: 1"))
    assert "192.0.2.77" not in repr(request)
    assert "192.0.2.77" not in repr(request.headers)
    error = only_error(signed("ADD DTCP/0.7", "Dest-Address: 192.0.2.77\x00", "Seq: 1"))
    assert "192.0.2.77" not in repr(error)


def test_headers_container() -> None:
    headers = Headers([("A", "1"), ("b", "2"), ("a", "3")])
    assert list(headers) == [("A", "1"), ("b", "2"), ("a", "3")]
    assert len(headers) == 3
    assert headers.get("a") == "1"
    assert headers.get("missing") is None
    assert 42 not in headers


# --- request line and versions (D1) ---------------------------------------------------------


@pytest.mark.parametrize("version", ["0.5", "0.6", "0.7", "0.8"])
def test_d1_supported_versions_are_echoed(version: str) -> None:
    request = only_request(signed(f"NOOP DTCP/{version}", "Seq: 1"))
    assert request.version == version


@pytest.mark.parametrize(
    ("line", "reply_version"),
    [
        ("ADD DTCP/0.9", "0.8"),
        ("ADD DTCP/1.0", "0.8"),
        ("ADD DTCP/9.9", "0.8"),
        ("FOO DTCP/2.0", "0.8"),  # version is judged before the method
        ("ADD DTCP/0.4", "0.5"),
        ("ADD DTCP/0.0", "0.5"),
    ],
)
def test_d1_unsupported_version_gets_505_in_highest_or_lowest(
    line: str, reply_version: str
) -> None:
    error = only_error(signed(line, "Csource-ID: md1", "Seq: 77"))
    assert (error.status, error.version, error.seq, error.fatal) == (505, reply_version, 77, False)


@pytest.mark.parametrize(
    "line",
    [
        "ADD dtcp/0.7",
        "ADD Dtcp/0.7",
        "ADD DTCP/07",
        "ADD DTCP/0.10",
        "ADD DTCP/0.x",
        "ADD DTCP/.7",
        "ADD DTCP0.7",
        "ADD HTTP/1.1",
        "ADD",
        "DTCP/0.7",
        "ADD DTCP/0.7 extra",
        " ADD DTCP/0.7",
        "\tADD DTCP/0.7",
        "ADD DTCP/\u0660.7",
        "AD\u00c9 DTCP/0.7",
        "FOO\x1fDTCP/0.7",
        "ADD\x0bDTCP/0.7",
        "ADD\x0cDTCP/0.7",
    ],
)
def test_d1_malformed_request_line_is_400(line: str) -> None:
    error = only_error(signed(line, "Seq: 9"))
    assert (error.status, error.version, error.seq) == (400, None, 9)


@pytest.mark.parametrize("line", ["ADD  DTCP/0.7", "ADD\tDTCP/0.7", "ADD DTCP/0.7  "])
def test_request_line_whitespace_runs_are_accepted(line: str) -> None:
    assert only_request(signed(line, "Seq: 1")).method == "ADD"


@pytest.mark.parametrize("method", ["FOO", "add", "Add", "ENABLE", "DISABLE", "NOTIFY", "X-CUSTOM"])
def test_d1_unknown_method_is_501_in_the_request_version(method: str) -> None:
    error = only_error(signed(f"{method} DTCP/0.8", "Csource-ID: md1", "Seq: 12"))
    assert (error.status, error.version, error.seq, error.method) == (501, "0.8", 12, method)


@pytest.mark.parametrize("method", ["ADD", "DELETE", "REFRESH", "LIST", "NOOP"])
def test_draft_methods_are_framed(method: str) -> None:
    assert only_request(signed(f"{method} DTCP/0.7", "Seq: 1")).method == method


def test_d1_session_stays_usable_after_errors() -> None:
    stream = (
        signed("ADD DTCP/9.9", "Seq: 1")
        + signed("FOO DTCP/0.7", "Seq: 2")
        + signed("ADD dtcp/0.7", "Seq: 3")
        + signed("NOOP DTCP/0.7", "Bad Header", "Seq: 4")
        + signed(*NOOP)
    )
    for chunk in (1, 7, None):
        results = decode(stream, chunk)
        assert [r.status if isinstance(r, DecodeError) else "ok" for r in results] == [
            505,
            501,
            400,
            400,
            "ok",
        ]


def test_version_tuple() -> None:
    assert version_tuple("0.7") == (0, 7)
    assert version_tuple("10.2") == (10, 2)


# --- header injection and malformed lines (D3) -----------------------------------------------

INJECTION_CASES = [
    pytest.param(b"Csource-ID: mallory\rFlags: STATIC\r\n", id="bare-CR-in-value"),
    pytest.param(b"Csource-ID: mallory\nFlags: STATIC\r\n", id="bare-LF-in-value"),
    pytest.param(b"Csource-ID: mallory\r\r\n", id="CR-CR-LF"),
    pytest.param(b"Csource-ID: mall\x00ory\r\n", id="NUL"),
    pytest.param(b"Csource-ID: mall\x01ory\r\n", id="SOH"),
    pytest.param(b"Csource-ID: mall\x1bory\r\n", id="ESC"),
    pytest.param(b"Csource-ID: mall\x7fory\r\n", id="DEL"),
    pytest.param(b"Csource-ID: mall\x0bory\r\n", id="VT"),
    pytest.param(b"Csource-ID mallory\r\n", id="no-colon"),
    pytest.param(b": mallory\r\n", id="empty-name"),
    pytest.param(b"Csource ID: mallory\r\n", id="space-in-name"),
    pytest.param(b"Fl@gs: STATIC\r\n", id="bad-name-char"),
    pytest.param(b" Flags: STATIC\r\n", id="leading-space"),
    pytest.param(b"Csource-ID: md1\r\n\tFlags: STATIC\r\n", id="folded-continuation"),
    pytest.param(b"Csource-ID: \xff\xfe\r\n", id="invalid-UTF-8"),
    pytest.param(b"Csource-ID: md\\1\r\n", id="short-escape"),
    pytest.param(b"Csource-ID: md\\256\r\n", id="escape-above-255"),
    pytest.param(b"Csource-ID: md\\\r\n", id="trailing-backslash"),
    pytest.param(b"Csource-ID: md\\abc\r\n", id="non-digit-escape"),
]


@pytest.mark.parametrize("bad_line", INJECTION_CASES)
def test_d3_crlf_injection_rejected(bad_line: bytes) -> None:
    message = b"ADD DTCP/0.7\r\n" + bad_line + b"Seq: 3\r\n\r\n"
    for chunk in (1, None):
        results = decode(message + signed(*NOOP), chunk)
        assert len(results) >= 2
        assert all(isinstance(r, DecodeError) and r.status == 400 for r in results[:-1])
        assert isinstance(results[-1], Request)
        assert results[-1].method == "NOOP"
        # The injected header never reaches any request.
        assert not any(isinstance(r, Request) and "flags" in r.headers for r in results)


def test_d3_bare_lf_message_is_rejected_and_the_stream_resyncs() -> None:
    lf_only = b"ADD DTCP/0.7\nCsource-ID: md1\nSeq: 1\n\n"
    results = decode(lf_only + signed(*NOOP))
    assert [type(r) for r in results] == [DecodeError, Request]
    assert isinstance(results[0], DecodeError)
    assert (results[0].status, results[0].version, results[0].seq) == (400, "0.7", 1)


def test_d3_empty_line_must_be_crlf() -> None:
    assert only_error(lines_bytes(*NOOP) + b"\n").status == 400


def test_d3_escaped_crlf_never_splits_a_header() -> None:
    request = only_request(signed("NOOP DTCP/0.7", "Csource-ID: mallory\\013\\010Flags: STATIC"))
    assert request.headers.keys() == frozenset({"csource-id"})
    assert unescape(request.headers.get("csource-id") or "") == "mallory\r\nFlags: STATIC"


def test_d3_line_cap_is_8_kib() -> None:
    fits = "X-Pad: " + "a" * (8192 - len("X-Pad: "))
    assert isinstance(only_request(signed("NOOP DTCP/0.7", fits)), Request)
    too_long = fits + "a"
    for chunk in (1000, None):
        results = decode(signed("NOOP DTCP/0.7", too_long, "Seq: 4") + signed(*NOOP), chunk)
        assert [type(r) for r in results] == [DecodeError, Request]
        assert isinstance(results[0], DecodeError)
        assert (results[0].status, results[0].fatal) == (400, False)


def test_d3_header_count_cap_is_64() -> None:
    # Authentication-Info is the 64th header line.
    headers = [f"X-H{i}: v" for i in range(63)]
    assert isinstance(only_request(signed("NOOP DTCP/0.7", *headers)), Request)
    for chunk in (50, None):
        stream = signed("NOOP DTCP/0.7", *headers, "X-One-Too-Many: v") + signed(*NOOP)
        results = decode(stream, chunk)
        assert [type(r) for r in results] == [DecodeError, Request]
        assert isinstance(results[0], DecodeError)
        assert (results[0].status, results[0].fatal) == (400, False)


@pytest.mark.parametrize("chunk", [4096, None])
def test_d3_one_mib_header_line_is_rejected(chunk: int | None) -> None:
    decoder = MessageDecoder()
    stream = b"ADD DTCP/0.7\r\nCsource-ID: " + b"m" * 2**20 + b"\r\nSeq: 1\r\n\r\n"
    results: list[Request | DecodeError] = []
    for start in range(0, len(stream), chunk or len(stream)):
        results += decoder.feed(stream[start : start + (chunk or len(stream))])
    assert results
    assert all(isinstance(r, DecodeError) and r.status == 400 for r in results)
    # Beyond the 64 KiB message cap the channel must close (D12).
    assert decoder.failed


def test_d3_ten_thousand_headers_are_rejected() -> None:
    stream = lines_bytes("NOOP DTCP/0.7", *(["X-A: b"] * 10_000)) + b"\r\n"
    for chunk in (512, None):
        results = decode(stream, chunk)
        assert results
        assert all(isinstance(r, DecodeError) and r.status == 400 for r in results)


def test_d3_salvaged_seq_never_comes_from_the_next_message() -> None:
    stream = b"NOOP DTCP/0.7\r\n" + b"X-Pad: " + b"a" * 9000 + b"\r\n\r\n" + signed(*NOOP)
    results = decode(stream)
    assert isinstance(results[0], DecodeError)
    assert results[0].seq is None


# --- oversize and junk (D12) -----------------------------------------------------------------


def test_d12_ten_mib_body_caps_and_closes_with_bounded_memory() -> None:
    decoder = MessageDecoder()
    decoder.feed(b"ADD DTCP/0.7\r\nSeq: 8\r\n")
    chunk = b"X-Junk: " + b"j" * 4000 + b"\r\n"
    results: list[Request | DecodeError] = []
    for _ in range(10 * 2**20 // len(chunk)):
        results += decoder.feed(chunk)
        assert decoder.pending <= MAX_MESSAGE_BYTES + len(chunk)
    fatal = [r for r in results if isinstance(r, DecodeError) and r.fatal]
    assert len(fatal) == 1
    assert (fatal[0].status, fatal[0].seq) == (400, 8)
    assert decoder.failed
    assert decoder.feed(signed(*NOOP)) == []
    assert decoder.pending == 0


def test_d12_oversize_line_without_newline_never_buffers_it() -> None:
    decoder = MessageDecoder()
    results: list[Request | DecodeError] = []
    for _ in range(200):
        results += decoder.feed(b"z" * 65536)
        assert decoder.pending <= 65536 + 8194
    assert isinstance(results[0], DecodeError)
    assert results[0].status == 400
    assert decoder.failed


def test_d12_binary_junk_never_raises() -> None:
    rng = random.Random(1234)
    for _ in range(200):
        junk = rng.randbytes(rng.randrange(1, 3000))
        decoder = MessageDecoder()
        for start in range(0, len(junk), 97):
            for result in decoder.feed(junk[start : start + 97]):
                assert isinstance(result, DecodeError)


def test_d12_mutated_messages_yield_requests_or_errors_only() -> None:
    rng = random.Random(99)
    base = signed("ADD DTCP/0.7", "Csource-ID: md1", "Dest-Address: 10.0.0.1", "Seq: 1")
    alphabet = b"\r\n\x00\\:, -*!0123456789abcdefX\xff"
    for _ in range(2000):
        mutated = bytearray(base)
        for _ in range(rng.randrange(1, 6)):
            mutated[rng.randrange(len(mutated))] = alphabet[rng.randrange(len(alphabet))]
        decoder = MessageDecoder()
        results = decoder.feed(bytes(mutated)) + decoder.feed(signed(*NOOP))
        assert results
        assert all(isinstance(r, (Request, DecodeError)) for r in results)


def test_decoder_caps_are_configurable() -> None:
    decoder = MessageDecoder(max_line=20, max_headers=2, max_message=100)
    [error] = decoder.feed(b"NOOP DTCP/0.7\r\nX-A: b\r\nX-B: c\r\nX-C: d\r\n\r\n")
    assert isinstance(error, DecodeError)
    assert error.detail == "too many header lines"
    [error] = decoder.feed(b"NOOP DTCP/0.7\r\nX-A: " + b"b" * 30 + b"\r\n\r\n")
    assert isinstance(error, DecodeError)
    assert error.detail == "line too long"
    errors = decoder.feed(b"NOOP DTCP/0.7\r\n" + b"X-A: b\r\n" * 20)
    assert [(e.status, e.fatal) for e in errors if isinstance(e, DecodeError)] == [
        (400, False),
        (400, True),
    ]
    assert decoder.failed


# --- escapes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("plain", "plain"),
        ("a\\032b", "a b"),
        ("\\000", "\x00"),
        ("\\044", ","),
        ("\\092", "\\"),
        ("caf\\195\\169", "caf\u00e9"),
        ("\\013\\010", "\r\n"),
    ],
)
def test_unescape(raw: str, text: str) -> None:
    assert unescape(raw) == text


def test_unescape_rejects_bytes_that_are_not_utf8() -> None:
    with pytest.raises(ValueError):
        unescape("\\255")


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("md1", "md1"),
        ("a b", "a\\032b"),
        ("x\r\nFlags: STATIC", "x\\013\\010Flags:\\032STATIC"),
        ("back\\slash", "back\\092slash"),
        ("caf\u00e9", "caf\\195\\169"),
        ("", ""),
    ],
)
def test_escape_round_trips(text: str, wire: str) -> None:
    assert escape(text) == wire
    assert unescape(wire) == text


# --- the one-pass header reading agrees with the line-by-line loop ------------------------


def _outcome(result: Request | DecodeError) -> object:
    if isinstance(result, DecodeError):
        return result
    return (result.method, result.version, list(result.headers), result.signed_bytes,
            result.authentication_info)  # fmt: skip


_ODD_LINES = (
    "Seq: 7", "Seq :7", "Seq\t:\t7\t", "seq: 8", "X-Note: a:b: c ", "X-Note: a:b: c ",
    "X-Note:", "Dest-Port: 80", " Dest-Port: 80", "Dest-Port 80", "D\u00e9st: x", "X-U: \u00e9t\u00e9",
    "X-Esc: a\\032b", "X-Esc: a\\999", "Flags: Static", "Flags:  Static  ", "9x-Ok: 1",
    "_bad: 1", "X-JTap-Foo: 1", "Authentication-Info: 00", "authentication-info: ab",
    "X-A.b_c-d: v", "Csource-ID: md1", "Csource-ID: md2",
)  # fmt: skip


def test_the_one_pass_header_reading_decides_exactly_as_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Messages of well-formed, odd and refused header lines (escapes, blanks around the colon,
    UTF-8, repeats, Authentication-Info in the middle) decode to the same request or error with
    the one-pass reading as with the line-by-line loop alone; and the one pass does decide."""
    import flowtap.dtcp.message as message_module

    rng = random.Random(15)
    messages = [signed(*NOOP)]
    for _ in range(3000):
        lines = [rng.choice(("ADD DTCP/0.7", "LIST DTCP/0.5", "NOOP DTCP/0.8"))]
        lines += rng.sample(_ODD_LINES, rng.randint(0, 6))
        data = lines_bytes(*lines) + b"\r\n"
        messages.append(signed(*lines) if rng.random() < 0.5 else data)
    fast_decided = 0
    original = message_module._fast_request
    for data in messages:
        with_fast = [_outcome(r) for r in decode(data)]
        monkeypatch.setattr(message_module, "_fast_request", lambda *args: None)
        loop_only = [_outcome(r) for r in decode(data)]
        monkeypatch.setattr(message_module, "_fast_request", original)
        assert with_fast == loop_only, data
        lines = data[: data.find(b"\r\n\r\n")].split(b"\r\n")
        fast_decided += original(data, lines, "ADD", "0.7") is not None
    assert fast_decided > len(messages) // 4  # the common case is the one pass
