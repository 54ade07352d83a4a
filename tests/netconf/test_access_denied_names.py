"""An access-denied outside lawful intercept names the permission the login class lacks
(issue 17 item 7): the operations guarded by one permission bit, and copy-config running to
startup, which also tells the split-duty way (configure + maintenance)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config.datastores import Datastores
from flowtap.config.permissions import expand
from flowtap.config.persist import StateDir
from flowtap.config.schema import Schema
from flowtap.config.txn import TransactionManager
from flowtap.netconf.context import ServerContext
from flowtap.netconf.session import Session

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:flowtap:yang:system"


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema()


async def session(schema: Schema, tmp_path: Path, sent: list[bytes], *flags: str) -> Session:
    txn = TransactionManager(schema, StateDir(tmp_path))
    await txn.boot(f'<system xmlns="{SYS}"><host-name>boot</host-name></system>'.encode(),
                   persist=True)  # fmt: skip
    ctx = ServerContext(schema, txn, Datastores(txn))
    user = Principal("ops", "ops", "ops", expand(set(flags)), "password")
    return Session(ctx, user, "127.0.0.1", sent.append, lambda: None)


def error_of(framed: bytes) -> tuple[str | None, str | None]:
    reply = etree.fromstring(framed.removesuffix(b"]]>]]>"))
    error = reply.find(f"{{{NC}}}rpc-error")
    assert error is not None, framed
    return error.findtext(f"{{{NC}}}error-tag"), error.findtext(f"{{{NC}}}error-message")


@pytest.mark.parametrize(("flags", "body", "message"), [
    (("view",), "<kill-session><session-id>99</session-id></kill-session>",
     "Access denied: the login class lacks the maintenance permission"),
    (("view",), "<lock><target><candidate/></target></lock>",
     "Access denied: the login class lacks the configure permission"),
    (("view",), "<discard-changes/>",
     "Access denied: the login class lacks the configure permission"),
    (("configure",), "<get-commit-information/>",
     "Access denied: the login class lacks the view or view-configuration permission"),
    (("view",), "<copy-config><target><startup/></target><source><running/></source></copy-config>",
     "Access denied: copying a datastore needs full read (running to startup: configure and "
     "maintenance)"),
])  # fmt: skip
async def test_access_denied_names_the_missing_permission(
    schema: Schema, tmp_path: Path, flags: tuple[str, ...], body: str, message: str
) -> None:
    sent: list[bytes] = []
    nc = await session(schema, tmp_path, sent, *flags)
    await nc.handle(f'<rpc xmlns="{NC}" message-id="7">{body}</rpc>'.encode())
    assert error_of(sent[-1]) == ("access-denied", message)


async def test_copy_between_other_datastores_says_only_full_read(
    schema: Schema, tmp_path: Path
) -> None:
    sent: list[bytes] = []
    nc = await session(schema, tmp_path, sent, "view", "configure", "maintenance")
    await nc.handle(f'<rpc xmlns="{NC}" message-id="7"><copy-config><target><startup/></target>'
                    "<source><candidate/></source></copy-config></rpc>".encode())  # fmt: skip
    assert error_of(sent[-1]) == (
        "access-denied",
        "Access denied: copying a datastore needs full read",
    )
