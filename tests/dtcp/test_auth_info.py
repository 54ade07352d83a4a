"""HMAC-SHA1 Authentication-Info: the six verified vectors of the fact sheet §9.3."""

from __future__ import annotations

import pytest

from flowtap.dtcp.auth_info import SSH_KEY, SSH_SIGNER, Signer, verify_request
from flowtap.dtcp.message import MessageDecoder, Request

DRAFT_ADD = [
    "ADD DTCP/0.6 ",
    "Source-Address: 192.168.10.4 ",
    "Dest-Address: 10.1.1.1-10.1.1.10 ",
    "Protocol: 6,17 ",
    "Dest-Port: 53 ",
    "Timeout-Idle: 600 ",
    "Action: Copy ",
    "Priority: 2 ",
    "Flags: SendAsync ",
    "Cdest-ID: cdst_b ",
    "Csource-ID: csrc_a ",
    "Seq: 3827443 ",
]

JUNOS_DELETE = [
    "DELETE DTCP/0.7",
    "Csource-ID: dtcp1",
    "CRITERIA-ID: 2",
    "Flags: STATIC",
    "Seq: 10",
]

VECTORS = [
    pytest.param(
        b"Juniper",
        JUNOS_DELETE,
        "7e84ae871b12f2da023b038774115bb8d955f17e",
        id="1-junos-delete-request",
    ),
    pytest.param(
        b"Juniper",
        ["DTCP/0.7 200 OK", "SEQ: 10", "CRITERIA-COUNT: 1", "TIMESTAMP: 2011-02-13 16:00:02.802"],
        "2834ff32ec07d84753a046cfb552e072cc27d50b",
        id="2-junos-delete-reply",
    ),
    pytest.param(
        b"Juniper",
        ["DTCP/0.7 200 OK", "SEQ: 7", "CRITERIA-ID: 2", "TIMESTAMP: 2011-02-13 15:56:49.609"],
        "4880de4b8cead98c95813fd9b95e240b107d4693",
        id="3-junos-add-reply",
    ),
    pytest.param(
        b"Juniper",
        [
            "DISABLE DTCP/0.8",
            "Csource-ID: ft-user",
            "Criteria-ID: 8",
            "X-Drop-Policy: drop_pol",
            "Flags: STATIC",
            "Seq: 1",
        ],
        "963aa01c38c531f63fb410afd058c018be4d0230",
        id="4-junos-disable-request",
    ),
    pytest.param(
        b"secret", DRAFT_ADD, "28eb606458ba46160d7a59da48763020f5aef9f5", id="5-draft-add"
    ),
    pytest.param(
        b"secret",
        [
            "DTCP/0.6 200 OK ",
            "Criteria-ID: 38224 ",
            "Timestamp: 2005-01-01 12:01:01.111 ",
            "Seq: 3827443 ",
        ],
        "38099d03fcb5b12a849b36f9bdccc757303fafd0",
        id="6-draft-add-reply",
    ),
]


def head(lines: list[str]) -> bytes:
    return "".join(f"{line}\r\n" for line in lines).encode()


@pytest.mark.parametrize(("key", "lines", "expected"), VECTORS)
def test_fact_sheet_vectors(key: bytes, lines: list[str], expected: str) -> None:
    assert Signer(key).digest(head(lines)) == expected


@pytest.mark.parametrize(("key", "lines", "expected"), VECTORS)
def test_sign_appends_signature_and_empty_line(key: bytes, lines: list[str], expected: str) -> None:
    message = Signer(key).sign(head(lines), "Authentication-Info")
    assert message == head(lines) + f"Authentication-Info: {expected}\r\n\r\n".encode()


def decode_one(data: bytes) -> Request:
    [request] = MessageDecoder().feed(data)
    assert isinstance(request, Request)
    return request


@pytest.mark.parametrize(
    ("key", "lines", "expected"),
    [VECTORS[0], VECTORS[4]],  # the two request vectors the decoder can serve (DISABLE is 501)
)
def test_decoded_requests_verify_over_their_exact_bytes(
    key: bytes, lines: list[str], expected: str
) -> None:
    # Vector 5 keeps a trailing space on every line: the decoder strips it from values but the
    # signature must still cover the bytes as received.
    request = decode_one(head(lines) + f"Authentication-Info: {expected} \r\n\r\n".encode())
    assert request.signed_bytes == head(lines)
    assert verify_request(request, Signer(key))
    assert request.headers.get("seq") == lines[-1].split(":")[1].strip()


def test_ssh_key_is_juniper() -> None:
    assert SSH_KEY == b"Juniper"
    assert SSH_SIGNER.digest(b"x") == Signer(b"Juniper").digest(b"x")


def test_sign_uses_upper_case_name_by_default_and_name_is_not_signed() -> None:
    lines = ["DTCP/0.7 200 OK", "SEQ: 7", "CRITERIA-ID: 2", "TIMESTAMP: 2011-02-13 15:56:49.609"]
    assert SSH_SIGNER.sign(head(lines)).endswith(
        b"\r\nAUTHENTICATION-INFO: 4880de4b8cead98c95813fd9b95e240b107d4693\r\n\r\n"
    )


GOOD = "7e84ae871b12f2da023b038774115bb8d955f17e"
DELETE = head(JUNOS_DELETE)


@pytest.mark.parametrize(
    ("signed", "presented", "valid"),
    [
        (DELETE, GOOD, True),
        (DELETE, GOOD.upper(), True),
        (DELETE.replace(b"10", b"11"), GOOD, False),
        (DELETE + b"X-Extra: 1\r\n", GOOD, False),
        (DELETE, GOOD[:-1], False),
        (DELETE, GOOD + "0", False),
        (DELETE, "z" * 40, False),
        (DELETE, "\u00e9" * 40, False),
        (DELETE, "", False),
        (DELETE, None, False),
    ],
)
def test_verify(signed: bytes, presented: str | None, valid: bool) -> None:
    assert SSH_SIGNER.verify(signed, presented) is valid


def test_wrong_key_fails() -> None:
    assert not Signer(b"juniper").verify(DELETE, GOOD)
    assert not Signer(b"secret").verify(DELETE, GOOD)


def test_repr_hides_key() -> None:
    assert "Juniper" not in repr(SSH_SIGNER)
