"""Junos authentication semantics against a real FreeRADIUS (tests/radius_server.py users)."""

from __future__ import annotations

import logging
import time

import asyncssh
import pytest

from flowtap.auth import passwords
from flowtap.auth.authenticator import AuthDecision, Authenticator
from flowtap.config.model import Config, RadiusServer, User
from flowtap.config.permissions import LI_FLAGS, expand
from tests.radius_server import FreeRadius, free_udp_port

FRANK_LOCAL = passwords.make_hash("frank-local", rounds=1000)
CAROL_LOCAL = passwords.make_hash("carol-local", rounds=1000)
PEER = "192.0.2.10"

CLASSES = {"li-admin": frozenset({"admin", "system"}), "li-ops": frozenset({"flow-tap", "view"})}
USERS = {
    "remote": User("remote", "li-admin"),
    "ops": User("ops", "operator"),
    "frank": User("frank", "read-only", encrypted_password=FRANK_LOCAL),
    "carol": User("carol", "li-ops", encrypted_password=CAROL_LOCAL),
}


def config(
    radius_servers: tuple[RadiusServer, ...],
    order: tuple[str, ...] = ("radius", "password"),
    users: dict[str, User] | None = None,
) -> Config:
    return Config(
        classes=CLASSES,
        users=USERS if users is None else users,
        authentication_order=order,
        radius_servers=radius_servers,
    )


@pytest.fixture
def live(radius_server: FreeRadius) -> tuple[RadiusServer, ...]:
    return (radius_server.server(),)


@pytest.fixture
def dead() -> tuple[RadiusServer, ...]:
    return (RadiusServer("127.0.0.1", "testing123", port=free_udp_port(), timeout=1, retry=1),)


auth = Authenticator()


async def test_accept_with_vsa_permissions_through_remote_template(live: tuple) -> None:
    d = await auth.password(config(live), "bob", "bob-secret", PEER)
    assert d.accepted and d.principal is not None
    assert d.method == "radius" and d.template == "remote" and d.trail == ("radius:accept",)
    p = d.principal
    assert (p.user, p.template_user, p.login_class, p.method) == (
        "bob",
        "remote",
        "li-admin",
        "radius",
    )
    assert p.permissions == {"flow-tap", "flow-tap-control", "admin", "system"}
    assert p.is_li and p.has("flow-tap-control")


async def test_seed_example_radius_flags_union_template_class(live: tuple) -> None:
    # RADIUS "flow-tap-operation configure" + class [admin system]
    d = await auth.password(config(live), "alice", "alice-secret", PEER)
    assert d.principal is not None and d.template == "remote"
    expected = expand({"flow-tap-operation", "configure", "admin", "system"})
    assert d.principal.permissions == expected
    assert expected == {"flow-tap-operation", "configure", "admin", "system"}


async def test_reject_falls_back_to_local_password_with_radius_password(live: tuple) -> None:
    d = await auth.password(config(live), "frank", "frank-local", PEER)
    assert d.accepted and d.principal is not None
    assert d.method == "password" and d.trail == ("radius:reject", "password:accept")
    assert d.principal.login_class == "read-only" and d.principal.permissions == {"view"}
    # the RADIUS password still works through RADIUS (same-name local account is the template)
    d = await auth.password(config(live), "frank", "frank-radius", PEER)
    assert d.method == "radius" and d.template == "frank"
    assert d.principal is not None and d.principal.permissions == {"view"}


async def test_reject_then_bad_local_password_is_refused(live: tuple) -> None:
    d = await auth.password(config(live), "frank", "nope", PEER)
    assert not d.accepted
    assert d.reason == "bad-password" and d.trail == ("radius:reject", "password:bad-password")


async def test_reject_is_final_with_radius_only(live: tuple) -> None:
    # the local password is right, but a RADIUS reject ends it under [radius]
    d = await auth.password(config(live, ("radius",)), "frank", "frank-local", PEER)
    assert not d.accepted
    assert d.method == "radius" and d.reason == "radius-reject" and d.trail == ("radius:reject",)


@pytest.mark.parametrize("order", [("radius", "password"), ("radius",)])
async def test_radius_down_falls_back_to_local(dead: tuple, order: tuple[str, ...]) -> None:
    start = time.monotonic()
    d = await auth.password(config(dead, order), "frank", "frank-local", PEER)
    assert time.monotonic() - start >= 0.9  # waited for the timeout
    assert d.accepted and d.method == "password"
    assert d.trail[0] == "radius:no-answer" and d.trail[-1] == "password:accept"
    if order == ("radius",):
        assert "last-resort" in d.trail


async def test_radius_down_and_bad_local_password(dead: tuple) -> None:
    d = await auth.password(config(dead, ("radius",)), "frank", "wrong", PEER)
    assert not d.accepted and d.reason == "bad-password"
    assert d.trail == ("radius:no-answer", "last-resort", "password:bad-password")


@pytest.mark.parametrize("order", [("radius", "password"), ("radius",)])
async def test_wrong_secret_falls_back_to_local(
    radius_server: FreeRadius, order: tuple[str, ...]
) -> None:
    servers = (radius_server.server(secret="wrong-secret"),)
    # carol's RADIUS password would be accepted if the secret were right
    d = await auth.password(config(servers, order), "carol", "carol-local", PEER)
    assert d.accepted and d.method == "password" and d.trail[0] == "radius:no-answer"
    assert d.principal is not None and d.principal.permissions == {"flow-tap", "view"}
    d = await auth.password(config(servers, order), "carol", "carol-secret", PEER)
    assert not d.accepted


async def test_garbage_vsa_flags_are_ignored_and_logged_without_values(
    live: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flowtap")
    d = await auth.password(config(live), "mallory", "mallory-secret", PEER)
    assert d.principal is not None
    # only "view" was a valid flag; "all;rm", "superuser", "flow_tap_operation", "FLOW-TAP",
    # the 216-character value, the non-ASCII and the control-character values add nothing
    assert d.principal.permissions == {"view", "admin", "system"}
    assert not d.principal.is_li
    notes = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert notes and all(r.levelno == logging.DEBUG for r in caplog.records if "ignored" in r.msg)
    for message in (r.getMessage() for r in caplog.records):
        assert "rm -rf" not in message and "superuser" not in message and "mallory" not in message


async def test_all_from_radius_does_not_imply_li_flags(live: tuple) -> None:
    d = await auth.password(config(live), "root-li", "root-li-secret", PEER)
    assert d.principal is not None
    assert "all" in d.principal.permissions and "secret-control" in d.principal.permissions
    assert not d.principal.permissions & LI_FLAGS


async def test_several_vsa_instances_and_separators_are_unioned(live: tuple) -> None:
    users = {"remote": User("remote", "unauthorized")}
    d = await auth.password(config(live, users=users), "erin", "erin-secret", PEER)
    assert d.principal is not None and d.principal.login_class == "unauthorized"
    assert d.principal.permissions == {
        "view",
        "flow-tap",
        "flow-tap-operation",
        "configure",
        "admin",
    }


async def test_juniper_local_user_name_selects_template(live: tuple) -> None:
    d = await auth.password(config(live), "dave", "dave-secret", PEER)
    assert d.principal is not None and d.template == "ops"
    assert d.principal.template_user == "ops" and d.principal.login_class == "operator"
    assert d.principal.permissions == {"clear", "network", "reset", "trace", "view"}


async def test_unknown_local_user_name_falls_back_to_remote(live: tuple) -> None:
    d = await auth.password(config(live), "oscar", "oscar-secret", PEER)
    assert d.principal is not None and d.template == "remote"
    assert d.principal.permissions == {"flow-tap-operation", "admin", "system"}


async def test_radius_user_without_usable_template_is_refused(live: tuple) -> None:
    users = {k: v for k, v in USERS.items() if k != "remote"}
    for user, password in (("bob", "bob-secret"), ("oscar", "oscar-secret")):
        d = await auth.password(config(live, users=users), user, password, PEER)
        assert not d.accepted and d.reason == "no-template" and d.method == "radius"
        assert d.trail == ("radius:accept-without-template",)
    # a Juniper-Local-User-Name that exists still works without "remote"
    d = await auth.password(config(live, users=users), "dave", "dave-secret", PEER)
    assert d.accepted and d.template == "ops"


@pytest.mark.parametrize("order", [(), ("password",)])
async def test_without_radius_in_order_only_local_passwords(live: tuple, order: tuple) -> None:
    cfg = config(live, order)
    refused = await auth.password(cfg, "alice", "alice-secret", PEER)  # RADIUS would accept
    assert not refused.accepted and refused.reason == "unknown-user"
    assert refused.trail == ("password:unknown-user",)
    d = await auth.password(cfg, "frank", "frank-local", PEER)
    assert d.accepted and d.method == "password"


async def test_password_before_radius(live: tuple) -> None:
    cfg = config(live, ("password", "radius"))
    d = await auth.password(cfg, "frank", "frank-radius", PEER)
    assert d.accepted and d.trail == ("password:bad-password", "radius:accept")


async def test_local_user_without_password_and_radius_absent() -> None:
    d = await auth.password(config((), ("radius",)), "remote", "anything", PEER)
    assert not d.accepted and d.reason == "no-local-password"
    assert d.trail == ("radius:no-answer", "last-resort", "password:no-local-password")


@pytest.mark.parametrize(
    ("user", "password", "reason"),
    [("", "x", "invalid-username"), ("a\nb", "x", "invalid-username"),
     ("a" * 254, "x", "invalid-username"), ("frank", "", "empty-password")],
)  # fmt: skip
async def test_invalid_input_refused_before_any_method(
    radius_server: FreeRadius, user: str, password: str, reason: str
) -> None:
    before = len(radius_server.output)
    d = await auth.password(config((radius_server.server(),)), user, password, PEER)
    assert not d.accepted and d.reason == reason and d.method == "none"
    assert len(radius_server.output) == before


def test_public_key() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    other = asyncssh.generate_private_key("ssh-ed25519")
    line = key.export_public_key().decode().strip() + " frank@laptop"
    users = dict(USERS)
    users["frank"] = User("frank", "read-only", public_keys=("ssh-ed25519 AAAAgarbage", line))
    cfg = config((), users=users)
    for offered in (key, line, key.export_public_key().decode()):
        d = auth.public_key(cfg, "frank", offered, PEER)
        assert d.accepted and d.principal is not None
        assert d.principal.method == "public-key" and d.principal.permissions == {"view"}
    assert auth.public_key(cfg, "frank", other, PEER).reason == "unknown-key"
    assert auth.public_key(cfg, "frank", "not a key", PEER).reason == "unknown-key"
    assert auth.public_key(cfg, "carol", key, PEER).reason == "no-public-keys"
    assert auth.public_key(cfg, "nobody", key, PEER).reason == "unknown-user"


async def test_decision_audit_record(live: tuple) -> None:
    d: AuthDecision = await auth.password(config(live), "alice", "alice-secret", PEER)
    rec = d.audit_record("sess-1")
    assert (rec.event, rec.result, rec.principal, rec.template) == (
        "auth",
        "accept",
        "alice",
        "remote",
    )
    assert (rec.peer, rec.session, rec.method, rec.reason) == (
        PEER,
        "sess-1",
        "radius",
        "radius:accept",
    )
    assert rec.target is None
    d = await auth.password(config(live, ("radius",)), "frank", "frank-local", PEER)
    rec = d.audit_record()
    assert (rec.result, rec.method, rec.reason) == ("reject", "radius", "radius:reject")


async def test_passwords_and_secrets_never_logged(
    radius_server: FreeRadius, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    servers = (radius_server.server(), radius_server.server(secret="wrong-secret"))
    for order in (("radius", "password"), ("radius",)):
        await auth.password(config(servers, order), "frank", "frank-local", PEER)
        await auth.password(config(servers[1:], order), "alice", "alice-secret", PEER)
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("frank-local", "alice-secret", "testing123", "wrong-secret", "frank", "alice"):
        assert secret not in text
