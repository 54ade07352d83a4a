"""Engine errors become rpc-errors in one place (netconf.engine_errors), field for field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config import model
from flowtap.config.datastores import Datastores
from flowtap.config.permissions import expand
from flowtap.config.persist import StateDir
from flowtap.config.schema import Schema
from flowtap.config.txn import TransactionManager
from flowtap.errors import CommitFailed, ConfigError, ConfigErrors, NetconfRpcError
from flowtap.netconf.context import ServerContext
from flowtap.netconf.engine_errors import rpc_error, rpc_errors
from flowtap.netconf.replies import error_reply
from flowtap.netconf.session import Session

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:flowtap:yang:system"
HEAD = b'<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="7">'
EVERY_FIELD = ConfigError(
    tag="bad-attribute",
    message="insert anchor does not exist",
    type="protocol",
    severity="warning",
    path="/fts:system/fts:login/fts:user[fts:name='a']",
    app_tag="missing-instance",
    info={"bad-attribute": "key", "bad-element": "user"},
)


def test_every_field_is_carried_over() -> None:
    mapped = rpc_error(EVERY_FIELD)
    assert isinstance(mapped, NetconfRpcError)
    assert (mapped.tag, mapped.message, mapped.type, mapped.severity, mapped.path,
            mapped.app_tag, mapped.info) == (
        "bad-attribute", "insert anchor does not exist", "protocol", "warning",
        "/fts:system/fts:login/fts:user[fts:name='a']", "missing-instance",
        {"bad-attribute": "key", "bad-element": "user"},
    )  # fmt: skip
    assert mapped.info is not EVERY_FIELD.info  # the reply cannot alter the engine's error


def test_every_field_in_the_rpc_error_xml() -> None:
    assert error_reply({"message-id": "7"}, rpc_errors(EVERY_FIELD)) == HEAD + (
        b"<rpc-error><error-type>protocol</error-type><error-tag>bad-attribute</error-tag>"
        b"<error-severity>warning</error-severity><error-app-tag>missing-instance</error-app-tag>"
        b'<error-path xmlns:fts="urn:flowtap:yang:system">'
        b"/fts:system/fts:login/fts:user[fts:name='a']</error-path>"
        b'<error-message xml:lang="en">insert anchor does not exist</error-message>'
        b"<error-info><bad-attribute>key</bad-attribute><bad-element>user</bad-element>"
        b"</error-info></rpc-error></rpc-reply>"
    )


def test_defaults_leave_out_the_optional_elements() -> None:
    error = ConfigError(tag="in-use", message="Another session has a confirmed commit")
    assert error_reply({"message-id": "7"}, rpc_errors(error)) == HEAD + (
        b"<rpc-error><error-type>application</error-type><error-tag>in-use</error-tag>"
        b"<error-severity>error</error-severity>"
        b'<error-message xml:lang="en">Another session has a confirmed commit</error-message>'
        b"</rpc-error></rpc-reply>"
    )


def test_several_errors_keep_their_order() -> None:
    first = ConfigError(tag="unknown-element", message="Unknown element 'a'", path="/fts:system",
                        info={"bad-element": "a"})  # fmt: skip
    second = ConfigError(tag="unknown-namespace", type="protocol", message="No module",
                         info={"bad-element": "b", "bad-namespace": "urn:x"})  # fmt: skip
    mapped = rpc_errors(ConfigErrors([first, second]))
    assert [(e.tag, e.type, e.path, e.info) for e in mapped] == [
        ("unknown-element", "application", "/fts:system", {"bad-element": "a"}),
        ("unknown-namespace", "protocol", None, {"bad-element": "b", "bad-namespace": "urn:x"}),
    ]
    reply = etree.fromstring(error_reply({"message-id": "7"}, mapped))
    tags = reply.findall(f"{{{NC}}}rpc-error/{{{NC}}}error-tag")
    assert [tag.text for tag in tags] == ["unknown-element", "unknown-namespace"]


def test_a_hook_refusal_is_an_engine_error() -> None:
    refusal = CommitFailed("flow-tap: cannot bind", tag="resource-denied", path="/ftsvc:services")
    assert isinstance(refusal, ConfigError) and str(refusal) == "flow-tap: cannot bind"
    (mapped,) = rpc_errors(refusal)
    assert (mapped.tag, mapped.type, mapped.severity, mapped.path, mapped.app_tag, mapped.info) \
        == ("resource-denied", "application", "error", "/ftsvc:services", None, {})
    assert CommitFailed("no").tag == "operation-failed"


# -- through the session: what the engine raises reaches the client as rpc-errors ------------


class Refusing:
    name = "refusing"

    def validate(self, old: model.Config, new: model.Config) -> None:
        raise CommitFailed("refused by the hook", path="/fts:system/fts:host-name")

    async def prepare(self, old: model.Config, new: model.Config) -> Any:
        return None

    async def commit(self, handle: Any) -> None:
        pass

    async def abort(self, handle: Any) -> None:
        pass


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema()


async def session(schema: Schema, tmp_path: Path, sent: list[bytes]) -> Session:
    txn = TransactionManager(schema, StateDir(tmp_path))
    await txn.boot(f'<system xmlns="{SYS}"><host-name>boot</host-name></system>'.encode(),
                   persist=True)  # fmt: skip
    ctx = ServerContext(schema, txn, Datastores(txn))
    admin = Principal("admin", "admin", "super-user", expand({"all"}), "password")
    return Session(ctx, admin, "127.0.0.1", sent.append, lambda: None)


def rpc(body: str) -> bytes:
    return f'<rpc xmlns="{NC}" message-id="7">{body}</rpc>'.encode()


def edit(config: str, *options: str) -> bytes:
    return rpc(f"<edit-config><target><candidate/></target>{''.join(options)}"
               f"<config>{config}</config></edit-config>")  # fmt: skip


def errors_of(framed: bytes) -> list[tuple[str | None, ...]]:
    reply = etree.fromstring(framed.removesuffix(b"]]>]]>"))
    fields = ("error-type", "error-tag", "error-path", "error-message")
    return [
        tuple(error.findtext(f"{{{NC}}}{name}") for name in fields)
        for error in reply.iterfind(f"{{{NC}}}rpc-error")
    ]


async def test_session_maps_one_engine_error(schema: Schema, tmp_path: Path) -> None:
    sent: list[bytes] = []
    nc = await session(schema, tmp_path, sent)
    await nc.handle(edit(f'<system xmlns="{SYS}" xmlns:nc="{NC}">'
                         '<host-name nc:operation="create">x</host-name></system>'))  # fmt: skip
    assert errors_of(sent[-1]) == [
        ("application", "data-exists", "/fts:system/fts:host-name", "Data already exists")
    ]
    assert nc.out_rpc_errors == 1 and nc.ctx.stats.out_rpc_errors == 1


async def test_session_maps_several_engine_errors(schema: Schema, tmp_path: Path) -> None:
    sent: list[bytes] = []
    nc = await session(schema, tmp_path, sent)
    await nc.handle(edit(f'<system xmlns="{SYS}"><nosuch/></system><other xmlns="urn:x"/>',
                         "<error-option>continue-on-error</error-option>"))  # fmt: skip
    assert errors_of(sent[-1]) == [
        ("application", "unknown-element", "/fts:system", "Unknown element 'nosuch'"),
        ("protocol", "unknown-namespace", None,
         "No YANG module has the namespace of element 'other'"),
    ]  # fmt: skip
    assert nc.out_rpc_errors == 1  # one reply, however many errors it holds


async def test_session_maps_a_hook_refusal(schema: Schema, tmp_path: Path) -> None:
    sent: list[bytes] = []
    nc = await session(schema, tmp_path, sent)
    nc.ctx.txn.add_hook(Refusing())
    await nc.handle(edit(f'<system xmlns="{SYS}"><host-name>new</host-name></system>'))
    await nc.handle(rpc("<commit/>"))
    assert errors_of(sent[-1]) == [
        ("application", "operation-failed", "/fts:system/fts:host-name", "refused by the hook")
    ]
