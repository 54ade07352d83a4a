"""Issue 13 item 1, DTCP share: a request whose cost grows with the criteria table (LIST, and
DELETE/REFRESH of ranges) never holds the appliance; other sessions are served meanwhile."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncssh

from tests.flowtapd import Flowtapd
from tests.integration.dtcp_support import install, make_flowtapd, md, running

CRITERIA = 5_000
LISTS = 10  # pipelined: about 24 MB of replies, seconds of work for the server
REFRESHES = 4
BOUND = 2.0  # s; before slicing one NOOP waited for all ten LISTs (about 5 s here, loaded)


async def test_other_sessions_are_served_while_big_lists_are_produced(tmp_path: Path) -> None:
    with running(make_flowtapd(tmp_path)) as server:
        async with md(server, "md1") as lister, md(server, "md2") as other:
            await install(lister, CRITERIA)
            await asyncio.sleep(1)  # the publisher installs the table
            lists = b"".join(lister.build("LIST", [("Flags", "Both")]) for _ in range(LISTS))
            lister.process.stdin.write(lists)
            received = asyncio.create_task(_drain_replies(lister.process.stdout, LISTS))
            round_trips = []
            while not received.done():
                started = time.monotonic()
                assert (await other.noop()).status == 200
                round_trips.append(time.monotonic() - started)
            assert await received >= 20_000_000  # every LIST came back whole (about 2.4 MB each)
        print(f"\nNOOP round trips during {LISTS} LISTs of {CRITERIA}: max "
              f"{max(round_trips):.3f} s of {len(round_trips)}")  # fmt: skip
        assert len(round_trips) >= 3, round_trips  # served during the LISTs, not after them
        assert max(round_trips) < BOUND, round_trips
        async with md(server, "md2") as other:
            refreshing = asyncio.create_task(lister_refresh_and_delete(server))
            round_trips = []
            while not refreshing.done():
                started = time.monotonic()
                assert (await other.noop()).status == 200
                round_trips.append(time.monotonic() - started)
            assert await refreshing == [CRITERIA] * (REFRESHES + 1)
        print(f"NOOP round trips during {REFRESHES} REFRESHes and a DELETE of {CRITERIA}: max "
              f"{max(round_trips):.3f} s of {len(round_trips)}")  # fmt: skip
        assert max(round_trips) < BOUND, round_trips


async def lister_refresh_and_delete(server: Flowtapd) -> list[int | None]:
    """Pipelined REFRESHes of every criterion, then a DELETE of all: their counts."""
    async with md(server, "md1") as lister:
        refresh = lister.build("REFRESH", [("Criteria-ID", "*"), ("Timeout-Total", "600")])
        replies = await lister.pipeline([*[refresh] * REFRESHES,
                                         lister.build("DELETE", [("Criteria-ID", "*")])])
    return [reply.criteria_count for reply in replies]


async def _drain_replies(stream: asyncssh.SSHReader[bytes], count: int) -> int:
    """Read ``count`` replies without parsing them (a parse of 40 MB would stall this loop, and
    the round trips measured on it); returns the bytes read."""
    total, ends, tail = 0, 0, b""
    while ends < count:
        chunk = await asyncio.wait_for(stream.read(1 << 20), 120)
        assert chunk, "channel closed"
        total += len(chunk)
        ends += (tail + chunk).count(b"\r\n\r\n")  # no blank line inside a reply
        tail = chunk[-3:]
    return total
