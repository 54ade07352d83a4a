"""Who is on the other end of a session, once authenticated."""

from __future__ import annotations

from dataclasses import dataclass

from flowtap.config.permissions import LI_FLAGS


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user and its effective (expanded) permissions.

    ``template_user`` is the local user whose login class applies: the user itself for a local
    user, ``Juniper-Local-User-Name`` or ``remote`` for a user known only to RADIUS.
    """

    user: str
    template_user: str
    login_class: str
    permissions: frozenset[str]
    method: str  # "password", "public-key" or "radius"

    def has(self, *flags: str) -> bool:
        """True when the principal holds at least one of ``flags``."""
        return any(f in self.permissions for f in flags)

    @property
    def is_li(self) -> bool:
        return bool(self.permissions & LI_FLAGS)
