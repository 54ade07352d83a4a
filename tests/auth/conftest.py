"""A real FreeRADIUS (tests/radius_server.py) shared by the auth tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.radius_server import FreeRadius


@pytest.fixture(scope="session")
def radius_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreeRadius]:
    with FreeRadius(tmp_path_factory.mktemp("freeradius")) as server:
        yield server
