from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ncclient.operations import RPCError
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
    """A fresh daemon for one test: for tests that commit, lock, restart or count."""
    server = Flowtapd(tmp_path / "state", free_port(), dict(USERS))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_flowtapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flowtapd]:
    """One daemon for every test of a module that asks for it, started once.

    Only for tests that leave it exactly as they found it, in any order: they read, or their
    edits fail, and they end with the same running and candidate configuration, no lock held,
    no confirmed commit pending, and nothing counted that another test checks (connection
    rates, memory, rollback history). The module's end checks the first three."""
    server = Flowtapd(tmp_path_factory.mktemp("shared") / "state", free_port(), dict(USERS))
    server.start()
    try:
        before = _settled(server)
        yield server
        assert _settled(server) == before, "a test changed the shared daemon: use flowtapd"
    finally:
        server.stop()


def _settled(server: Flowtapd) -> str:
    """The running configuration, once both datastores prove unlocked and the candidate clean
    (a lock is refused while another session holds one or the candidate has changes)."""
    with server.connect() as m:
        for name in ("running", "candidate"):
            try:
                m.lock(name)
            except RPCError as exc:
                pytest.fail(f"a test left the shared daemon's {name} locked or changed: {exc}")
            m.unlock(name)
        return str(m.get_config("running").data_xml)
