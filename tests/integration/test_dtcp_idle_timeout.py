"""Issue 13 item 2: a DTCP session's idle timeout is configurable, through the user's login
class ``idle-timeout`` as for NETCONF (else the service's 30 minutes)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.flowtapd import TestUser
from tests.integration.dtcp_support import USERS, make_flowtapd, md, running

SHORT_CLASS = ("<class><name>li-md-short</name><idle-timeout>2</idle-timeout>"
               "<permissions>flow-tap-operation</permissions></class>")  # fmt: skip


async def test_login_class_idle_timeout_closes_an_idle_dtcp_channel(tmp_path: Path) -> None:
    users = {**USERS, "md9": TestUser("md9", "md9-pw-1", "li-md-short")}
    # a minute lasts 0.5 s here: md9's class allows 1 s of silence, md1's the default 60 s
    server = make_flowtapd(tmp_path, users, env={"FLOWTAP_DTCP_IDLE_MINUTE": "0.5",
                                                 "FLOWTAP_DTCP_IDLE_TIMEOUT": "60"})  # fmt: skip
    server.extra_classes += SHORT_CLASS
    with running(server):
        async with md(server, "md9") as short, md(server) as default:
            started = time.monotonic()
            assert await asyncio.wait_for(short.process.stdout.read(), 10) == b""
            assert 0.8 < time.monotonic() - started < 8
            assert (await default.noop()).status == 200  # the default class's session lives on
