"""The house's import rule (README, "Architecture"): each room imports only the rooms it names.

Read from the source with :mod:`ast`, so a violating import fails here whether or not it runs
(imports inside functions and under ``TYPE_CHECKING`` count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "flowtap"

# room -> the rooms it may import (itself always); a room is a package or a flat module
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "console": set(),
    "gc_policy": set(),
    "about": set(),
    "oplog": {"errors", "config", "auth"},
    "li_commits": {"errors", "config", "auth", "audit"},
    "config": {"errors", "auth.principal"},  # the value type of who is asking, nothing else
    "audit": {"errors", "config"},
    "auth": {"errors", "config", "audit"},
    "intercept": {"errors"},
    "sshd": {"errors", "config", "auth"},
    "dataplane": {"errors", "config", "intercept", "gc_policy"},  # the capture workers
    "netconf": {"errors", "config", "auth", "sshd"},
    "dtcp": {"errors", "config", "auth", "audit", "intercept", "sshd"},
    # netconf: only its hardened XML parser (netconf.xmlparse), which X1 requests go through too
    "x1": {"errors", "config", "auth", "audit", "intercept", "sshd", "netconf"},
    "tools": {"errors", "config", "auth", "audit", "intercept", "sshd", "dataplane", "netconf",
              "dtcp", "x1", "console", "about"},
    "app": {"*"},
    "cli": {"*"},
    "__main__": {"*"},
}


def room_of(module: str) -> str:
    """``flowtap.a.b`` -> ``a``; ``flowtap.auth.principal`` stays whole (a value type)."""
    parts = module.split(".")[1:]
    if parts[:2] == ["auth", "principal"]:
        return "auth.principal"
    return parts[0] if parts else ""


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "flowtap":
                found |= {f"flowtap.{alias.name}" for alias in node.names}
            elif node.module.startswith("flowtap."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("flowtap.")}
    return found


MODULES = sorted(p for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_house_rule(path: Path) -> None:
    relative = path.relative_to(SRC).with_suffix("")
    room = relative.parts[0]
    assert room in ALLOWED, f"{relative}: a module outside every room; add it to README and here"
    allowed = ALLOWED[room]
    if "*" in allowed:
        return
    wrong = set()
    for target in imports(path):
        other = room_of(target)
        if other == room or other in allowed or (other == "auth.principal" and "auth" in allowed):
            continue
        if room == "auth" and other == "auth.principal":
            continue
        wrong.add(target)
    assert not wrong, f"{relative} ({room}) may not import {sorted(wrong)}"


def test_few_modules_at_the_top() -> None:
    flat = sorted(p.name for p in SRC.glob("*.py") if not p.name.startswith("__"))
    assert len(flat) <= 10, flat
