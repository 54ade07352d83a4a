"""Login authentication with Junos semantics, shared by the NETCONF and DTCP SSH servers.

``authentication-order`` (``Config.authentication_order``):

- unset (or ``[password]``): local passwords only;
- methods are tried in order; a RADIUS reject or a wrong local password moves to the next one;
- when no configured method answered at all (every RADIUS server silent: timeout, unreachable,
  wrong shared secret) the local password database is consulted as a last resort;
- so ``[radius password]``: reject or silence -> local; ``[radius]``: reject is final, silence
  -> local.

A user accepted by RADIUS gets the class of a *template* user, chosen in this order (decision):
the local user named by ``Juniper-Local-User-Name``, else a local user of the same name (its own
account, as in Junos), else ``remote``. With none of them configured the login is refused
(``no-template``), final: nothing could grant the user a class. Permissions are the template
class's permissions (``Config.class_permissions``) united with the ``Juniper-User-Permissions``
flags (comma- and/or space-separated, several instances), then expanded. Unknown flags and
non-printable values are ignored and logged at DEBUG (a count, never the values); nothing
unparsable ever adds a permission.

Other decisions: empty passwords and user names that are empty, over 253 octets or not
printable are refused before any method is asked. Public keys are checked against the local
user's configured keys, whatever the authentication order (Junos: keys are local). Unknown local
users cost the same crypt time as known ones. Nothing here logs passwords or user names.

Every call returns an :class:`AuthDecision`; ``decision.audit_record(session)`` is the LI audit
record the server appends (see :mod:`flowtap.audit`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncssh

from flowtap.audit import AuditRecord
from flowtap.auth import passwords, radius
from flowtap.auth.principal import Principal
from flowtap.config.model import REMOTE_TEMPLATE, Config, User
from flowtap.config.permissions import expand, parse_radius_permissions

log = logging.getLogger(__name__)

MAX_USERNAME_OCTETS = 253

METHOD_RADIUS = "radius"
METHOD_PASSWORD = "password"  # noqa: S105 (a method name)
METHOD_PUBLIC_KEY = "public-key"


@dataclass(frozen=True, slots=True)
class AuthDecision:
    """The outcome of one authentication attempt, with what the audit log needs."""

    username: str
    peer: str | None
    principal: Principal | None  # None: refused
    method: str  # the method that decided (for a refusal: the last one tried, or "none")
    template: str | None = None  # template user whose class applies
    reason: str | None = None  # refusal reason: "radius-reject", "bad-password", "no-template"..
    trail: tuple[str, ...] = ()  # every step, e.g. ("radius:no-answer", "password:accept")

    @property
    def accepted(self) -> bool:
        return self.principal is not None

    def audit_record(self, session: str | None = None) -> AuditRecord:
        """The ``auth`` record for :meth:`flowtap.audit.AuditLog.append`."""
        return AuditRecord(
            event="auth",
            result="accept" if self.accepted else "reject",
            principal=self.username[:MAX_USERNAME_OCTETS],
            template=self.template,
            peer=self.peer,
            session=session,
            method=self.method,
            reason=", ".join(self.trail) or self.reason,
        )


def valid_username(username: str) -> bool:
    """Non-empty, printable, at most 253 UTF-8 octets (what RADIUS can carry)."""
    if not username or not username.isprintable():
        return False
    try:
        return len(username.encode("utf-8")) <= MAX_USERNAME_OCTETS
    except UnicodeEncodeError:
        return False


@functools.lru_cache(maxsize=4096)
def _key_blob(openssh_line: str) -> bytes | None:
    """Public key blob of an OpenSSH public key line, or None when it does not parse."""
    try:
        return bytes(asyncssh.import_public_key(openssh_line).public_data)
    except (asyncssh.KeyImportError, ValueError):
        return None


def _template_for(config: Config, username: str, local_user_name: str | None) -> User | None:
    if local_user_name is not None and local_user_name in config.users:
        return config.users[local_user_name]
    if username in config.users:
        return config.users[username]
    return config.users.get(REMOTE_TEMPLATE)


def radius_principal(
    config: Config, username: str, accept: radius.RadiusAccept
) -> tuple[Principal | None, str | None]:
    """Principal for a RADIUS-accepted user, or ``(None, None)`` without a usable template."""
    flags, unknown = parse_radius_permissions(accept.permissions)
    if unknown or accept.dropped_values:
        log.debug(
            "ignored %d unknown Juniper-User-Permissions token(s), %d unusable VSA value(s)",
            len(unknown),
            accept.dropped_values,
        )
    template = _template_for(config, username, accept.local_user_name)
    if template is None:
        return None, None
    permissions = expand(config.class_permissions(template.login_class) | flags)
    principal = Principal(
        user=username,
        template_user=template.name,
        login_class=template.login_class,
        permissions=permissions,
        method=METHOD_RADIUS,
    )
    return principal, template.name


def local_principal(config: Config, user: User, method: str) -> Principal:
    return Principal(
        user=user.name,
        template_user=user.name,
        login_class=user.login_class,
        permissions=config.class_permissions(user.login_class),
        method=method,
    )


class Authenticator:
    """Password (RADIUS and/or local) and public-key authentication against a ``Config``.

    Stateless apart from caches: one instance may serve every SSH server and connection. Pass
    the ``Config`` snapshot current at the time of the attempt.
    """

    async def password(
        self, config: Config, username: str, password: str, peer: str | None = None
    ) -> AuthDecision:
        """Authenticate a password login following ``config.authentication_order``."""
        if not valid_username(username):
            return AuthDecision(username, peer, None, "none", reason="invalid-username")
        if not password:
            return AuthDecision(username, peer, None, "none", reason="empty-password")
        order: Sequence[str] = config.authentication_order or (METHOD_PASSWORD,)
        trail: list[str] = []
        answered = False
        reason = "no-method"
        method = "none"
        for step in order:
            if step == METHOD_RADIUS:
                method = METHOD_RADIUS
                result = await radius.authenticate(
                    config.radius_servers, username, password, calling_station=peer
                )
                if isinstance(result, radius.RadiusAccept):
                    principal, template = radius_principal(config, username, result)
                    if principal is None:
                        trail.append("radius:accept-without-template")
                        return AuthDecision(
                            username, peer, None, METHOD_RADIUS, None, "no-template", tuple(trail)
                        )
                    trail.append("radius:accept")
                    return AuthDecision(
                        username, peer, principal, METHOD_RADIUS, template, None, tuple(trail)
                    )
                if isinstance(result, radius.RadiusReject):
                    answered = True
                    reason = "radius-reject"
                    trail.append("radius:reject")
                else:
                    reason = "radius-no-answer"
                    trail.append("radius:no-answer")
            elif step == METHOD_PASSWORD:
                answered = True
                method = METHOD_PASSWORD
                decision = await self._local(config, username, password, peer, trail)
                if decision.accepted:
                    return decision
                reason = decision.reason or "bad-password"
            else:  # not in the YANG enumeration; never grants anything
                log.debug("ignoring unknown authentication-order method")
        if not answered:
            trail.append("last-resort")
            return await self._local(config, username, password, peer, trail)
        return AuthDecision(username, peer, None, method, None, reason, tuple(trail))

    async def _local(
        self, config: Config, username: str, password: str, peer: str | None, trail: list[str]
    ) -> AuthDecision:
        user = config.users.get(username)
        if user is None or not user.encrypted_password:
            await asyncio.to_thread(passwords.verify_dummy, password)
            reason = "unknown-user" if user is None else "no-local-password"
            trail.append(f"password:{reason}")
            return AuthDecision(username, peer, None, METHOD_PASSWORD, None, reason, tuple(trail))
        if not await asyncio.to_thread(passwords.verify, password, user.encrypted_password):
            trail.append("password:bad-password")
            return AuthDecision(
                username, peer, None, METHOD_PASSWORD, user.name, "bad-password", tuple(trail)
            )
        trail.append("password:accept")
        principal = local_principal(config, user, METHOD_PASSWORD)
        return AuthDecision(
            username, peer, principal, METHOD_PASSWORD, user.name, None, tuple(trail)
        )

    def public_key(
        self,
        config: Config,
        username: str,
        key: asyncssh.SSHKey | str,
        peer: str | None = None,
    ) -> AuthDecision:
        """Whether ``key`` is one of the local user's configured keys.

        asyncssh calls ``validate_public_key`` for keys the client merely offers and checks the
        signature afterwards: treat an accepted decision as final (and audit it) only in
        ``auth_completed``.
        """
        user = config.users.get(username) if valid_username(username) else None
        if user is None or not user.public_keys:
            reason = "unknown-user" if user is None else "no-public-keys"
            return AuthDecision(username, peer, None, METHOD_PUBLIC_KEY, None, reason)
        blob = _key_blob(key.strip()) if isinstance(key, str) else bytes(key.public_data)
        if blob is not None:
            for configured in user.public_keys:
                if _key_blob(configured.strip()) == blob:
                    principal = local_principal(config, user, METHOD_PUBLIC_KEY)
                    return AuthDecision(
                        username, peer, principal, METHOD_PUBLIC_KEY, user.name, None,
                        ("public-key:accept",),
                    )  # fmt: skip
        return AuthDecision(
            username, peer, None, METHOD_PUBLIC_KEY, user.name, "unknown-key",
            ("public-key:unknown-key",),
        )  # fmt: skip
