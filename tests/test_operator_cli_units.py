"""flowtap-cli's pure parts: cutting configuration text at a path, set lines below a path, and
the parsing of configure-mode commands (the server-facing parts are in
tests/integration/test_operator_cli.py)."""

from __future__ import annotations

import pytest

from flowtap.tools.operator_configure import parse_commit, split_pipe, words_of
from flowtap.tools.operator_ops import UsageError
from flowtap.tools.operator_render import select, select_set, table

TEXT = """\
## Last commit: 2026-12-07 17:00:00 UTC by admin
interfaces {
    ge-0/0/0 {
        unit 0 {
            family {
                inet;
            }
        }
    }
}
system {
    host-name "r 1";
    login {
        user bob {
            class ops;
        }
        user carol;
    }
    authentication-order [ radius password ];
}
"""


@pytest.mark.parametrize(("path", "shown"), [
    ([], TEXT),
    (["system"], 'host-name "r 1";\nlogin {\n    user bob {\n        class ops;\n    }\n'
                 "    user carol;\n}\nauthentication-order [ radius password ];\n"),
    (["system", "host-name"], 'host-name "r 1";\n'),
    (["system", "host-name", "r 1"], 'host-name "r 1";\n'),
    (["system", "login", "user"], "user bob {\n    class ops;\n}\nuser carol;\n"),
    (["system", "login", "user", "bob"], "class ops;\n"),
    (["system", "login", "user", "carol"], "user carol;\n"),
    (["system", "authentication-order"], "authentication-order [ radius password ];\n"),
    (["interfaces", "ge-0/0/0", "unit", "0", "family"], "inet;\n"),
    (["system", "login", "user", "dave"], None),
    (["system", "radius-server"], None),
])  # fmt: skip
def test_select_shows_what_junos_shows_below_a_path(path: list[str], shown: str | None) -> None:
    assert select(TEXT, path) == shown


def test_select_set_keeps_the_lines_at_or_below_the_path() -> None:
    lines = ('set system host-name "r 1"\nset system login user bob class ops\n'
             "set system login user bobby class ops\nset interfaces ge-0/0/0 unit 0\n")
    assert select_set(lines, ["system", "login", "user", "bob"]) == (
        "set system login user bob class ops\n")
    assert select_set(lines, ["system", "host-name"]) == 'set system host-name "r 1"\n'
    assert select_set(lines, []) == lines


def test_pipes_in_every_spelling() -> None:
    for words in (["system", "|", "display", "set"], ["system", "display", "set"],
                  ["system", "--display", "set"], ["system", "--display=set"],
                  words_of("system|display set")):  # fmt: skip
        assert split_pipe(words) == (["system"], ["display", "set"])
    assert split_pipe(words_of("| compare rollback 3")) == ([], ["compare", "rollback", "3"])


def test_commit_options() -> None:
    request = parse_commit(words_of('confirmed 3 comment "a \\"b\\"" and-quit'))
    assert (request.confirm_minutes, request.comment, request.and_quit) == (3, 'a "b"', True)
    assert parse_commit(["confirmed"]).confirm_minutes == 10  # Junos's default
    assert parse_commit(["check"]).check
    for bad in (["confirmed", "0"], ["check", "confirmed"], ["at", "12:00"], ["comment"]):
        with pytest.raises(UsageError):
            parse_commit(bad)


def test_table_aligns_columns() -> None:
    assert table(("A", "LONGER"), [("xyz", "1")]) == "A    LONGER\nxyz  1\n"


class _Refusing:
    """A NetconfClient whose server refuses every request with ``message``."""

    def __init__(self, message: str) -> None:
        self.message = message

    async def rpc(self, body: str) -> None:
        from lxml import etree

        from flowtap.errors import RpcFailed

        reply = etree.fromstring(
            '<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><rpc-error>'
            "<error-tag>operation-failed</error-tag>"
            f"<error-message>{self.message}</error-message></rpc-error></rpc-reply>"
        )
        raise RpcFailed(reply, ["operation-failed"])


async def test_a_refused_set_line_is_not_said_to_be_on_line_1() -> None:
    """Each configure command is a one-line load, so the server's "(line 1)" was wrong for the
    fourth line of ``flowtap-cli configure < changes.txt`` (issue 17 item 4)."""
    from typing import Any

    from flowtap.tools import operator_ops
    from flowtap.tools.operator_ops import CommandFailed

    nc: Any = _Refusing("syntax error: nosuch (line 1)")
    with pytest.raises(CommandFailed) as refused:
        await operator_ops.load_set(nc, "set system nosuch 1")
    assert str(refused.value) == "syntax error: nosuch"
    nc = _Refusing("Access denied: changing system needs the system-control permission")
    with pytest.raises(CommandFailed) as denied:
        await operator_ops.load_set(nc, "set system host-name x")
    assert str(denied.value) == "Access denied: changing system needs the system-control permission"
