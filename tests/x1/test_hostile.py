"""Hostile X1 bodies (issue 18 "Tests"; SECURITY.md §5.1 N7-N9, §5.3): every one gets a typed
error, top-level or per message, and never anything else."""

from __future__ import annotations

import random

import pytest
from lxml import etree

from flowtap.x1 import encode, model
from flowtap.x1.codes import X1TopLevelError
from flowtap.x1.decode import DEFAULT_MAX_MESSAGES, decode_request
from flowtap.x1.names import X1_NS, XSI_NS

from .samples import every_request, message, request, task_body

PING = message("PingRequest")
ROOT_OPEN = ('<ns1:X1Request xmlns:ns1="http://uri.etsi.org/03221/X1/2017/10" '
             'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">')  # fmt: skip


@pytest.mark.parametrize(("body", "words"), [
    (b"", "empty message"),
    (b"hello", "not well-formed"),
    (b"<a>", "not well-formed"),
    (request(PING)[:-5], "not well-formed"),
    (b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
     + ROOT_OPEN.encode() + b"&b;</ns1:X1Request>", "DOCTYPE"),
    (b'<?xml version="1.0"?>\n<!DOCTYPE x SYSTEM "file:///etc/passwd">' + ROOT_OPEN.encode()
     + b"</ns1:X1Request>", "DOCTYPE"),
    (b"<!DOCTYPE ns1:X1Request>" + request(PING).split(b"\n", 1)[1], "DOCTYPE"),
    (ROOT_OPEN.encode() + b"&xxe;</ns1:X1Request>", "not well-formed"),
    (b"\xef\xbb\xbf" + request(PING), "byte-order mark"),
    (request(PING).replace(b"UTF-8", b"UTF-16"), "encoding"),
    (request(PING).replace(b"admfID", b"adm\xff"), "not well-formed"),
    (request(PING).replace(b"admfID", b"adm\x00"), "not well-formed"),
    (b"<X1Request>" + PING.encode() + b"</X1Request>", "NS_ERR_UNDEFINED_NAMESPACE"),
    (b'<X1Request xmlns:ns1="urn:x" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
     + PING.encode() + b"</X1Request>", "not an X1Request"),
    (request(PING).replace(b"http://uri.etsi.org/03221/X1/2017/10", b"urn:x1"),
     "not an X1Request"),
    (b'<ns1:X1Response xmlns:ns1="http://uri.etsi.org/03221/X1/2017/10"/>', "not an X1Request"),
    (ROOT_OPEN.encode() + b"</ns1:X1Request>", "holds no x1RequestMessage"),
    (ROOT_OPEN.encode() + b"text" + PING.encode() + b"</ns1:X1Request>", "not text"),
    # libxml2 stops at 256 levels by itself; the shared parser's own bound is 64
    (ROOT_OPEN.encode() + b"<a>" * 10_000 + b"</a>" * 10_000 + b"</ns1:X1Request>",
     "ERR_RESOURCE_LIMIT"),
    (ROOT_OPEN.encode() + b"<a>" * 100 + b"</a>" * 100 + b"</ns1:X1Request>", "nested deeper"),
    (ROOT_OPEN.encode() + b"<a/>" * 250_000 + b"</ns1:X1Request>", "too many elements"),
    (ROOT_OPEN.encode() + b"<a " + b" ".join(b'a%d="1"' % i for i in range(20_000)) + b"/>"
     + b"</ns1:X1Request>", "too many attributes"),
    (b"<a " + b" ".join(b'xmlns:p%d="urn:%d"' % (i, i) for i in range(20_000)) + b"/>",
     "namespace declarations"),
])  # fmt: skip
def test_unreadable_body_is_a_top_level_error(body, words):
    with pytest.raises(X1TopLevelError) as caught:
        decode_request(body)
    assert words in caught.value.description
    assert caught.value.code == 1010


def test_100_mb_body_is_refused_by_size_before_parsing():
    # Zero bytes are no XML at all: a parser that saw them would say so, not name the size.
    with pytest.raises(X1TopLevelError, match="larger than 4194304 bytes"):
        decode_request(bytes(100 * 1024 * 1024))
    with pytest.raises(X1TopLevelError, match="larger than 100 bytes"):
        decode_request(request(PING), max_bytes=100)


def test_10000_messages_are_refused_by_the_message_limit():
    body = request(*[PING] * 10_000)
    assert len(body) < 4 * 1024 * 1024  # so it is the count, not the size, that refuses it
    with pytest.raises(X1TopLevelError, match=f"more than {DEFAULT_MAX_MESSAGES} messages"):
        decode_request(body)


def test_10000_messages_decode_when_allowed():
    body = request(*[PING] * 10_000)
    decoded = decode_request(body, max_messages=10_000)
    assert len(decoded) == 10_000 and all(isinstance(d, model.Ping) for d in decoded)


def test_long_identifier_is_refused_per_message():
    (bad,) = decode_request(request(message("PingRequest").replace("admfID", "a" * 300)))
    assert isinstance(bad, model.MessageError) and "longer than 256" in bad.description


def test_task_with_too_many_targets_is_refused():
    targets = "".join("<ns1:targetIdentifier><ns1:tcpPort>1</ns1:tcpPort></ns1:targetIdentifier>"
                      for _ in range(300))  # fmt: skip
    (bad,) = decode_request(request(message("ActivateTaskRequest", task_body(targets))))
    assert isinstance(bad, model.MessageError)
    assert bad.code == 1010 and "more than 256 targetIdentifier" in bad.description


# ---- randomized: mutated valid requests ------------------------------------------------------

_VALID = encode.encode_request(every_request())


def _structural(rng: random.Random) -> bytes:
    root = etree.fromstring(_VALID)
    elements = list(root.iter())[1:]
    for _ in range(rng.randint(1, 3)):
        victim = rng.choice(elements)
        parent = victim.getparent()
        action = rng.randrange(7)
        if action == 0 and parent is not None:
            parent.remove(victim)
        elif action == 1 and parent is not None:
            parent.insert(parent.index(victim), etree.fromstring(etree.tostring(victim)))
        elif action == 2 and parent is not None and len(parent) > 1:
            parent.insert(0, victim)
        elif action == 3:
            victim.text = rng.choice(["", " ", "-1", "99999999999999999999", "x" * 2000,
                                      "192.0.2.1/33", "::", "v2.0.0", "\u00e9\u4e2d", "0"])
        elif action == 4:
            local = etree.QName(victim).localname
            victim.tag = rng.choice([f"{{urn:other}}{local}", local, f"{{{X1_NS}}}x{local}"])
        elif action == 5:
            victim.set(f"{{{XSI_NS}}}type", rng.choice(["x1:PingRequest", "nope", "x1:Foo",
                                                          "other:PingRequest", ""]))
        else:
            etree.SubElement(victim, f"{{{X1_NS}}}extra").text = "1"
    return etree.tostring(root)


def _bytes(rng: random.Random) -> bytes:
    data = bytearray(_VALID)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(data))
        roll = rng.randrange(3)
        if roll == 0:
            data[at] = rng.randrange(256)
        elif roll == 1:
            del data[at : at + rng.randint(1, 40)]
        else:
            data[at:at] = rng.choice([b"<", b">", b"&", b"&amp;", b"]]>", b"<x>", b"</x>",
                                      b'"', b"xmlns:x1='urn:y'", b"\x00", b"\xc3"])
    return bytes(data)


@pytest.mark.parametrize("kind", ["structural", "bytes"])
def test_mutated_requests_raise_nothing_but_the_codecs_error(kind):
    rng = random.Random(f"x1-{kind}")
    mutate = _structural if kind == "structural" else _bytes
    decoded_some = refused_some = 0
    for _ in range(400):
        data = mutate(rng)
        try:
            result = decode_request(data)
        except X1TopLevelError:
            refused_some += 1
            continue
        requests = []
        for item in result:
            if isinstance(item, model.MessageError):
                assert 1000 <= item.code <= 10000 and len(item.description) < 200
            else:
                requests.append(item)
        refused_some += len(result) - len(requests)
        decoded_some += len(requests)
        # whatever decodes is a faithful value: it survives encode -> decode unchanged
        if requests:
            assert decode_request(encode.encode_request(requests)) == requests
    assert decoded_some and refused_some
