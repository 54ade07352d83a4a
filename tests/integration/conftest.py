from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ncclient.transport import session as nc_session

from tests.flowtapd import Flowtapd, TestUser, free_port

# ncclient polls its send queue every TICK seconds (0.1 by default), capping any server at ~10
# RPC/s; tests are faster with a short tick and behave the same.
nc_session.TICK = 0.002

USERS = {
    "admin": TestUser("admin", "admin-pw-1", "li-admin"),
    "ops": TestUser("ops", "ops-pw-1", "ops"),
    "ftctl": TestUser("ftctl", "ftctl-pw-1", "ft-ctl"),
    "viewer": TestUser("viewer", "viewer-pw-1", "read-only"),
}


@pytest.fixture
def flowtapd(tmp_path: Path) -> Iterator[Flowtapd]:
    server = Flowtapd(tmp_path / "state", free_port(), dict(USERS))
    server.start()
    yield server
    server.stop()
