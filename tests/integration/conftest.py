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


def _running(state_dir: Path) -> Iterator[Flowtapd]:
    server = Flowtapd(state_dir, free_port(), dict(USERS))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def flowtapd(tmp_path: Path) -> Iterator[Flowtapd]:
    """A fresh daemon for one test: for tests that commit, lock, restart or count."""
    yield from _running(tmp_path / "state")


@pytest.fixture(scope="module")
def shared_flowtapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flowtapd]:
    """One daemon for every test of a module that asks for it, started once.

    Only for tests that leave it exactly as they found it, in any order: they read, or their
    edits fail, and they end with the same running and candidate configuration, no lock held,
    no confirmed commit pending, and nothing counted that another test checks (connection
    rates, memory, rollback history)."""
    yield from _running(tmp_path_factory.mktemp("shared") / "state")
