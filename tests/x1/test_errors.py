"""Every error code the X1 decoder can reach from input, with the message it belongs to; the
other messages of the request still decode."""

from __future__ import annotations

import pytest

from flowtap.x1 import model
from flowtap.x1.codes import ErrorCode
from flowtap.x1.decode import decode_request

from .samples import (
    DID,
    TRANSACTION,
    XID,
    destination_body,
    ip_and_port,
    message,
    request,
    target,
    task_body,
)

V4 = target("<ns1:ipv4Address>192.0.2.10</ns1:ipv4Address>")
PING = message("PingRequest")
SECOND = "3741800e-971b-4aa9-85f4-466d2b1adc80"


def _alone(type_name: str, body: str = "", **kwargs: str) -> model.MessageError:
    """The MessageError for one bad message sandwiched between two good pings."""
    data = request(PING, message(type_name, body, transaction=SECOND, **kwargs), PING)
    first, bad, last = decode_request(data)
    assert isinstance(first, model.Ping) and isinstance(last, model.Ping)
    assert isinstance(bad, model.MessageError), bad
    assert bad.index == 1 and bad.transaction_id == SECOND
    assert (bad.admf_identifier, bad.ne_identifier) == ("admfID", "neID")
    return bad


def _task(targets: str = V4, **kwargs: str) -> str:
    return task_body(targets, **kwargs)


CASES = [
    # (xsi:type, body, code, words of the description, message type)
    ("ActivateTaskRequest", _task(target("<ns1:e164Number>447700900000</ns1:e164Number>")),
     3010, "e164Number", "ActivateTask"),
    ("ModifyTaskRequest", _task(V4 + target("<ns1:imsi>001010123456789</ns1:imsi>")),
     3010, "imsi", "ModifyTask"),
    ("ActivateTaskRequest", _task(target("<ns1:sipUri>sip:a@b</ns1:sipUri>")), 3010, "sipUri",
     "ActivateTask"),
    ("ActivateTaskRequest", _task(extra="<ns1:listOfServiceTypes/>"), 3050, "listOfServiceTypes",
     "ActivateTask"),
    ("ActivateTaskRequest", _task(extra="<ns1:listOfMediationDetails/>"), 3000,
     "listOfMediationDetails", "ActivateTask"),
    ("ModifyTaskRequest", _task(extra="<ns1:taskDetailsExtensions/>"), 3001,
     "taskDetailsExtensions", "ModifyTask"),
    ("ActivateTaskRequest", _task(dids=f"<ns1:dId>{DID}</ns1:dId><ns1:dSId>x</ns1:dSId>"), 3000,
     "dSId", "ActivateTask"),
    ("CreateDestinationRequest", destination_body("<ns1:e164Number>4477</ns1:e164Number>"),
     6020, "e164Number", "CreateDestination"),
    ("ModifyDestinationRequest", destination_body("<ns1:uri>https://x</ns1:uri>"), 6020, "uri",
     "ModifyDestination"),
    ("CreateDestinationRequest",
     destination_body(ip_and_port(), "<ns1:destinationDetailsExtensions/>"), 6000,
     "destinationDetailsExtensions", "CreateDestination"),
    ("ModifyDestinationRequest",
     destination_body(ip_and_port(), "<ns1:destinationDetailsExtensions/>"), 6001,
     "destinationDetailsExtensions", "ModifyDestination"),
    ("ReportTaskIssueRequest", "", 1080, "ReportTaskIssueRequest", "ReportTaskIssue"),
    ("GetAllTaskDetailsRequest", "", 1080, "GetAllTaskDetails", "GetAllTaskDetails"),
    ("CreateObjectRequest", "", 1080, "CreateObject", "CreateObject"),
    ("FrobnicateRequest", "", 1010, "xsi:type", "ExtendedRequestMessageType"),
    ("ActivateTask", "", 1010, "xsi:type", "ExtendedRequestMessageType"),
    ("PingRequest", f"<ns1:xId>{XID}</ns1:xId>", 1010, "unexpected element xId", "Ping"),
    ("DeactivateTaskRequest", "", 1010, "lacks xId", "DeactivateTask"),
    ("DeactivateTaskRequest", "<ns1:xId>not-a-uuid</ns1:xId>", 1010, "xId is not a UUID",
     "DeactivateTask"),
    ("GetDestinationDetailsRequest", f"<ns1:dId>{DID}</ns1:dId><ns1:dId>{DID}</ns1:dId>", 1010,
     "unexpected element dId", "GetDestinationDetails"),
    ("ActivateTaskRequest", _task(delivery="X4Only"), 1010, "deliveryType is not one of",
     "ActivateTask"),
    ("ActivateTaskRequest", _task(targets=""), 1010, "lacks targetIdentifier", "ActivateTask"),
    ("ActivateTaskRequest", _task(extra="<ns1:correlationID>-1</ns1:correlationID>"), 1010,
     "correlationID out of range", "ActivateTask"),
    ("ActivateTaskRequest", _task(extra="<ns1:implicitDeactivationAllowed>maybe"
                                        "</ns1:implicitDeactivationAllowed>"), 1010,
     "not a boolean", "ActivateTask"),
    ("ActivateTaskRequest", _task(target("<ns1:macAddress>00:11:22:33:44:55</ns1:macAddress>")
                                  + target("<ns1:bogus>1</ns1:bogus>")), 3010, "macAddress",
     "ActivateTask"),
    ("ActivateTaskRequest", _task(target("<ns1:bogus>1</ns1:bogus>")), 1010,
     "unexpected element bogus in targetIdentifier", "ActivateTask"),
    ("ActivateTaskRequest", _task(target("<c:ipv4Address>192.0.2.1</c:ipv4Address>")), 1010,
     "unexpected element ipv4Address in targetIdentifier", "ActivateTask"),
    ("ActivateTaskRequest", _task(target(
        "<ns1:ipv4Address>192.0.2.1</ns1:ipv4Address><ns1:tcpPort>1</ns1:tcpPort>")), 1010,
     "exactly one element", "ActivateTask"),
    ("CreateDestinationRequest", destination_body(ip_and_port(port="<c:SCTPPort>1</c:SCTPPort>")),
     1010, "unexpected element SCTPPort in port", "CreateDestination"),
    ("CreateDestinationRequest",
     destination_body(ip_and_port(address="<c:IPv4Address>2001:db8::1</c:IPv4Address>")), 1010,
     "IPv4Address is not an IPv4 address", "CreateDestination"),
    ("CreateDestinationRequest",
     destination_body(ip_and_port(port="<c:TCPPort>65536</c:TCPPort>")), 1010,
     "TCPPort out of range", "CreateDestination"),
]  # fmt: skip


@pytest.mark.parametrize(("type_name", "body", "code", "words", "message_type"), CASES,
                         ids=[f"{c[2]}-{c[3][:40]}" for c in CASES])  # fmt: skip
def test_code_reached_from_input(type_name, body, code, words, message_type):
    bad = _alone(type_name, body)
    assert (bad.code, bad.message_type) == (code, message_type)
    assert words in bad.description


def test_unsupported_major_version_is_1020():
    bad = _alone("PingRequest", version="v2.0.0")
    assert bad.code == ErrorCode.UNSUPPORTED_VERSION
    assert _alone("PingRequest", version="1.6.1").code == ErrorCode.SYNTAX_SCHEMA_ERROR


def test_any_v1_version_is_accepted():
    (decoded,) = decode_request(request(message("PingRequest", version="v1.99.0")))
    assert isinstance(decoded, model.Ping) and decoded.header.version == "v1.99.0"


def test_header_out_of_order_is_1010_with_what_was_read():
    broken = message("PingRequest").replace("<ns1:version>v1.6.1</ns1:version>", "")
    (bad,) = decode_request(request(broken))
    assert isinstance(bad, model.MessageError)
    assert bad.code == 1010 and "lacks version" in bad.description
    # the transaction ID, not reached in order, is still found for the answer
    assert (bad.admf_identifier, bad.ne_identifier, bad.transaction_id) == ("admfID", "neID",
                                                                           TRANSACTION)
    unreadable = message("PingRequest", transaction="nope").replace("<ns1:version>v1.6.1"
                                                                    "</ns1:version>", "")
    (bad,) = decode_request(request(unreadable))
    assert isinstance(bad, model.MessageError) and bad.transaction_id == ""


def test_bad_transaction_id():
    (bad,) = decode_request(request(message("PingRequest", transaction="42")))
    assert isinstance(bad, model.MessageError)
    assert bad.code == 1010 and bad.description == "x1TransactionId is not a UUID"


def test_wrong_namespace_on_a_message_element():
    wrong = message("PingRequest").replace("ns1:admfIdentifier", "c:admfIdentifier")
    (bad,) = decode_request(request(wrong))
    assert isinstance(bad, model.MessageError)
    assert bad.code == 1010 and bad.message_type == "Ping"
    assert "lacks admfIdentifier" in bad.description


def test_xsi_type_in_another_namespace_is_1010():
    wrong = message("PingRequest").replace('xsi:type="ns1:PingRequest"', 'xsi:type="c:PingRequest"')
    (bad,) = decode_request(request(wrong))
    assert isinstance(bad, model.MessageError) and bad.code == 1010
    missing = message("PingRequest").replace(' xsi:type="ns1:PingRequest"', "")
    (bad,) = decode_request(request(missing))
    assert isinstance(bad, model.MessageError) and "no xsi:type" in bad.description
    assert bad.transaction_id == TRANSACTION and bad.message_type == "ExtendedRequestMessageType"


def test_a_foreign_element_among_messages_is_answered_in_its_place():
    data = request(PING, "<ns1:somethingElse/>", PING)
    first, bad, last = decode_request(data)
    assert isinstance(bad, model.MessageError) and bad.index == 1 and bad.code == 1010
    assert isinstance(first, model.Ping) and isinstance(last, model.Ping)


def test_descriptions_never_quote_values():
    secret = "447700900123"
    bad = _alone("ActivateTaskRequest", _task(target(f"<ns1:e164Number>{secret}</ns1:e164Number>")))
    assert secret not in bad.description
    bad = _alone("ActivateTaskRequest", _task(target(f"<ns1:ipv4Address>{secret}</ns1:ipv4Address>")))
    assert secret not in bad.description and bad.code == 1010


def test_every_message_of_a_mixed_request_is_answered_in_order():
    bodies = [message("PingRequest", transaction=f"3741800e-971b-4aa9-85f4-466d2b1a{i:04x}")
              if i % 3 else message("ReportNEIssueRequest",
                                    transaction=f"3741800e-971b-4aa9-85f4-466d2b1a{i:04x}")
              for i in range(30)]  # fmt: skip
    decoded = decode_request(request(*bodies))
    assert len(decoded) == 30
    for i, item in enumerate(decoded):
        if i % 3:
            assert isinstance(item, model.Ping)
            assert item.header.transaction_id.endswith(f"{i:04x}")
        else:
            assert isinstance(item, model.MessageError)
            assert (item.index, item.code) == (i, 1080)
            assert item.transaction_id.endswith(f"{i:04x}")


def test_codes_are_the_fact_sheets():
    assert {c.value for c in ErrorCode} >= {1000, 1010, 1020, 1030, 1040, 1050, 1060, 1070, 1080,
                                            2010, 2020, 2030, 2040, 3000, 3001, 3010, 3020, 3030,
                                            3040, 3050, 4000, 5000, 5010, 6000, 6001, 6020, 7000,
                                            7010, 8000, 8010, 8020, 10000}  # fmt: skip
