"""Admission (issue 13 item 3): Junos's connection-limit counts logged-in connections per IP
family; connections that have not logged in have their own pool (max-pre-auth in all,
max-pre-auth-per-source per address); rate-limit counts accepted connections per source address
and logins per family."""

from __future__ import annotations

from flowtap.sshd.admission import (
    CONNECTION_LIMIT,
    MAX_PRE_AUTH,
    MAX_PRE_AUTH_PER_SOURCE,
    RATE_LIMIT,
    Admission,
    Limits,
    family_of,
    source_of,
)


def clocked(limits: Limits) -> tuple[Admission, list[float]]:
    now = [0.0]
    return Admission(limits, window=60, clock=lambda: now[0]), now


def test_pre_auth_pool_is_per_source_and_separate_from_logged_in_slots() -> None:
    gate, _ = clocked(Limits(connection_limit=2, rate_limit=100, max_pre_auth=5,
                             max_pre_auth_per_source=2))  # fmt: skip
    assert [gate.admit("127.0.0.2") for _ in range(3)] == [None, None, MAX_PRE_AUTH_PER_SOURCE]
    # the host that never logs in does not keep the others out
    assert gate.admit("127.0.0.1") is None and gate.login("127.0.0.1") is None
    assert gate.admit("127.0.0.1") is None and gate.login("127.0.0.1") is None
    assert gate.logged_in(4) == 2 and gate.pre_auth() == 2
    assert gate.admit("127.0.0.3") == CONNECTION_LIMIT  # no logged-in slot left for it anyway
    gate.release("127.0.0.1", logged_in=True)
    assert [gate.admit(f"127.0.0.{i}") for i in (3, 4, 5, 6)] == [None, None, None, MAX_PRE_AUTH]
    gate.release("127.0.0.2", logged_in=False)
    assert gate.pre_auth("127.0.0.2") == 1 and gate.admit("::1") is None
    assert gate.logged_in(6) == 0


def test_rate_limit_per_source_for_connections_and_per_family_for_logins() -> None:
    gate, now = clocked(Limits(connection_limit=10, rate_limit=3, max_pre_auth=50,
                               max_pre_auth_per_source=50))  # fmt: skip
    for _ in range(3):
        assert gate.admit("127.0.0.2") is None
    assert gate.admit("127.0.0.2") == RATE_LIMIT  # the flooding host throttles itself...
    assert gate.admit("127.0.0.1") is None  # ...and nobody else
    assert gate.login("127.0.0.1") is None
    for address in ("127.0.0.3", "127.0.0.4"):
        assert gate.admit(address) is None and gate.login(address) is None
    assert gate.admit("127.0.0.5") == RATE_LIMIT  # three logins this minute in IPv4
    assert gate.admit("::1") is None  # IPv6 counts apart
    now[0] = 60.0
    assert gate.admit("127.0.0.2") is None  # the window slid


def test_limits_apply_live_and_nobody_is_dropped() -> None:
    gate, _ = clocked(Limits(connection_limit=3))
    for _ in range(2):
        assert gate.admit("127.0.0.1") is None and gate.login("127.0.0.1") is None
    gate.update(Limits(connection_limit=1))
    assert gate.logged_in(4) == 2  # lowered live, nobody dropped
    assert gate.admit("127.0.0.1") == CONNECTION_LIMIT
    assert gate.admit("::ffff:127.0.0.9") == CONNECTION_LIMIT  # IPv4-mapped is IPv4
    assert gate.pre_auth() == 0


def test_a_login_over_the_limit_releases_its_pre_auth_slot() -> None:
    gate, _ = clocked(Limits(connection_limit=1))
    assert gate.admit("127.0.0.1") is None and gate.admit("127.0.0.2") is None
    assert gate.login("127.0.0.1") is None
    assert gate.login("127.0.0.2") == CONNECTION_LIMIT
    assert gate.pre_auth() == 0 and gate.logged_in(4) == 1


def test_addresses() -> None:
    assert family_of("::ffff:192.0.2.1") == 4 and source_of("::ffff:192.0.2.1") == "192.0.2.1"
    assert family_of("fe80::1%eth0") == 6 and source_of("fe80::1%eth0") == "fe80::1"
