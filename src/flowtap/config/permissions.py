"""Junos login-class permission flags and the predefined classes.

Decision: ``all`` (and ``control``) never imply the lawful-intercept bits ``flow-tap``,
``flow-tap-control`` and ``flow-tap-operation``. Junos documents LI confidentiality as the point
of those bits ("anyone looking at the configuration ... can neither see nor guess who the LI users
are"), so they must always be granted by name, in a class or through RADIUS.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

LI_FLAGS = frozenset({"flow-tap", "flow-tap-control", "flow-tap-operation"})

ALL_FLAGS = frozenset(
    {
        "access", "access-control", "admin", "admin-control", "all", "clear", "configure",
        "control", "field", "firewall", "firewall-control", "floppy", "flow-tap",
        "flow-tap-control", "flow-tap-operation", "interface", "interface-control",
        "maintenance", "network", "reset", "rollback", "routing", "routing-control", "secret",
        "secret-control", "security", "security-control", "shell", "snmp", "snmp-control",
        "system", "system-control", "trace", "trace-control", "view", "view-configuration",
    }
)  # fmt: skip

CONTROL_FLAGS = frozenset(f for f in ALL_FLAGS if f.endswith("-control")) - LI_FLAGS

PREDEFINED_CLASSES: dict[str, frozenset[str]] = {
    "super-user": frozenset({"all"}),
    "operator": frozenset({"clear", "network", "reset", "trace", "view"}),
    "read-only": frozenset({"view"}),
    "unauthorized": frozenset(),
}


def expand(flags: Iterable[str]) -> frozenset[str]:
    """Resolve the umbrella flags: ``all`` grants every non-LI flag, ``control`` every
    non-LI -control flag, and each -control flag grants its plain view flag."""
    result = set(flags) & ALL_FLAGS
    if "all" in result:
        result |= ALL_FLAGS - LI_FLAGS
    if "control" in result:
        result |= CONTROL_FLAGS
    for flag in list(result):
        if flag.endswith("-control"):
            result.add(flag.removesuffix("-control"))
    return frozenset(result)


_SEPARATORS = re.compile(r"[\s,]+")


def parse_radius_permissions(values: Iterable[str]) -> tuple[frozenset[str], list[str]]:
    """Split Juniper-User-Permissions values (comma- or space-separated, several instances).

    Returns the known flags and the unknown tokens, which are ignored (never elevate on a
    parse error).
    """
    known: set[str] = set()
    unknown: list[str] = []
    for value in values:
        for token in _SEPARATORS.split(value.strip()):
            if not token:
                continue
            if token in ALL_FLAGS:
                known.add(token)
            else:
                unknown.append(token[:64])
    return frozenset(known), unknown
