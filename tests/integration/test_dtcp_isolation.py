"""Issue 4 acceptance 4 and SECURITY D4, D7: mediation devices are isolated (LI-3).

Decisions under test: Criteria-IDs are numbered per control source, so an ID of another source
is just an ID this source does not have; a Csource-ID naming anyone but the SSH user is an
unknown control source: never answered (499 is not sent), audit-logged, channel closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.flowtapd import Flowtapd
from tests.integration.dtcp_support import (
    add_fields,
    audit_records,
    listed_ids,
    make_flowtapd,
    md,
    request,
    shape,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flowtapd]:
    daemon = make_flowtapd(tmp_path_factory.mktemp("isolation"))
    daemon.start()
    yield daemon
    daemon.stop()


async def test_two_mediation_devices_see_only_their_own(server: Flowtapd) -> None:
    async with md(server, "md1") as a, md(server, "md2") as b:
        a_ids = [(await a.add(add_fields(dest=f"192.0.2.{i}"))).criteria_id for i in (1, 2, 3)]
        b_ids = [(await b.add(add_fields(dest="198.51.100.1", cdest="b-cd"))).criteria_id]
        assert a_ids == [1, 2, 3] and b_ids == [1]  # per-source numbering
        a_list, b_list = await a.list(), await b.list()
        assert listed_ids(a_list) == a_ids and listed_ids(b_list) == b_ids
        assert b"md2" not in a_list.raw and b"b-cd" not in a_list.raw
        assert b"md1" not in b_list.raw and b"192.0.2." not in b_list.raw

        probes = [
            ("DELETE", [("Criteria-ID", "3"), ("Flags", "STATIC")]),
            ("LIST", [("Criteria-ID", "3"), ("Flags", "Both")]),
            ("REFRESH", [("Criteria-ID", "3"), ("Timeout-Total", "10")]),
        ]
        foreign = [await b.request(method, fields) for method, fields in probes]
        assert listed_ids(await a.list()) == [1, 2, 3]  # A's criterion 3 survived
        await a.request("DELETE", [("Criteria-ID", "3"), ("Flags", "STATIC")])
        unknown = [await b.request(method, fields) for method, fields in probes]
        for theirs, nobodys in zip(foreign, unknown, strict=True):
            assert theirs.status_line == "DTCP/0.7 431 Unknown Criteria ID"
            assert shape(theirs) == shape(nobodys)  # all bytes but SEQ, TIMESTAMP, AUTH
            assert theirs.raw != nobodys.raw
        assert listed_ids(await a.list()) == [1, 2]
        # DELETE by a Cdest-ID the other source uses deletes nothing of it
        assert (await b.request("DELETE", [("Cdest-ID", "cd1"), ("Flags", "STATIC")])
                ).criteria_count == 0  # fmt: skip
        assert listed_ids(await a.list()) == [1, 2]
        await a.request("DELETE", [("Criteria-ID", "*"), ("Flags", "STATIC")])
        await b.request("DELETE", [("Criteria-ID", "*"), ("Flags", "STATIC")])


async def test_d4_csource_id_of_someone_else_is_never_answered(server: Flowtapd) -> None:
    async with md(server, "md2") as b:
        before = listed_ids(await b.list())
    async with md(server, "md1") as a:
        start = a.next_seq
        impostor = request("ADD", "md2", add_fields(dest="192.0.2.66"), seq=start)
        after = a.build("NOOP")
        replies = await a.send(impostor + after, 1, timeout=5)
        assert replies == []  # no reply to the impostor and none after: the channel closed
        assert await a.process.stdout.read() == b""
    async with md(server, "md1") as a:
        assert listed_ids(await a.list()) == []
    async with md(server, "md2") as b:
        assert listed_ids(await b.list()) == before
    await asyncio.sleep(0.1)
    (record,) = [r for r in audit_records(server) if r["result"].startswith("499")]
    assert record["principal"] == "md1" and record["method"] == "ADD"
    assert "md2" in record["reason"]


@pytest.mark.parametrize("criteria_id", ["-1", "18446744073709551616", "99999999999"])
async def test_d7_impossible_ids_look_like_unknown_ones(server: Flowtapd, criteria_id: str) -> None:
    async with md(server, "md1") as a:
        (await a.add(add_fields()))
        reply = await a.request("DELETE", [("Criteria-ID", criteria_id), ("Flags", "STATIC")])
        assert reply.status_line == "DTCP/0.7 431 Unknown Criteria ID"
        assert reply.get("CRITERIA-ID") == criteria_id
        assert len(listed_ids(await a.list())) == 1
        await a.request("DELETE", [("Cdest-ID", "cd1"), ("Flags", "STATIC")])
