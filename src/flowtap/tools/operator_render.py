"""What ``flowtap-cli`` prints: pure functions from the server's answers to text.

Configuration below a path (``show configuration system login``) is cut out of the server's
own rendering: the server writes the canonical notation (one statement per line, four blanks
per level), so a statement's words and its block are read off the lines, with the same word
splitting as the server's parser. The server has already left out what the user may not
read, and nothing here adds to or reinterprets the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowtap.config.junos_text import INDENT, child_named, flat_list, tokens
from flowtap.config.schema import Schema, SchemaNode
from flowtap.tools.operator_ops import FLOW_TAP_COUNTERS, Commit, SessionInfo, UsageError


def _words(line: str) -> list[str]:
    """A statement line's words (quotes removed), without ``{``, ``;``, brackets or comments."""
    return [piece for piece, quoted, _ in tokens(line)
            if quoted or piece not in ("{", "}", ";", "[", "]")]  # fmt: skip


def _depth(line: str) -> int:
    return (len(line) - len(line.lstrip(" "))) // len(INDENT)


def _block_end(lines: Sequence[str], start: int) -> int:
    """The index after the statement at ``start`` (after its closing brace if it opens one)."""
    if not lines[start].rstrip().endswith("{"):
        return start + 1
    depth = _depth(lines[start])
    end = start + 1
    while end < len(lines) and not (lines[end].strip() == "}" and _depth(lines[end]) == depth):
        end += 1
    return end + 1


def _dedent(lines: Sequence[str], levels: int) -> list[str]:
    cut = len(INDENT) * levels
    return [line[cut:] if line[:cut].isspace() else line.lstrip(" ") for line in lines]


def select(text: str, path: Sequence[str]) -> str | None:
    """The part of configuration ``text`` at ``path`` as Junos shows it: the inside of the
    block the path names (``system login`` -> what is in ``login { }``); the statements whose
    words the path begins (``system login user`` -> every ``user NAME { }``,
    ``system host-name`` -> ``host-name r1;``). None when nothing there is configured."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("##")]
    if not path:
        return text
    out: list[str] = []
    _select(lines, 0, len(lines), list(path), 0, out)
    return "".join(line + "\n" for line in out) if out else None


def _select(lines: Sequence[str], start: int, stop: int, path: list[str], depth: int,
            out: list[str]) -> None:  # fmt: skip
    at = start
    while at < stop:
        end = _block_end(lines, at)
        words = _words(lines[at])
        if len(words) > len(path) and words[: len(path)] == path:
            out += _dedent(lines[at:end], depth)  # the path ends inside this statement's words
        elif words and words == path[: len(words)]:
            rest = path[len(words):]
            if not rest:  # exactly this statement: its inside, or itself for a leaf
                out += _dedent(lines[at + 1 : end - 1], depth + 1) if end - at > 1 \
                    else _dedent(lines[at:end], depth)
            elif end - at > 1:
                _select(lines, at + 1, end - 1, rest, depth + 1, out)
        at = end


def configuration_at(text: str, path: Sequence[str], command: str) -> str:
    """:func:`select`, and when nothing is there, whether the path exists at all: a path the
    schema does not have is a syntax error (UsageError), one that is just not configured shows
    nothing, as on Junos (the same for a subtree the user may not read: no oracle)."""
    selected = select(text, path)
    if selected is not None:
        return selected
    why = path_error(path)
    if why is not None:
        raise UsageError(f"{command} {' '.join(path)}: {why}")
    return ""


def path_error(path: Sequence[str]) -> str | None:
    """Why ``path`` names nothing in the schema (``syntax error: WORD``), or None when it is a
    path of the schema. Read from the YANG modules this package ships (the server's own)."""
    schema = Schema()
    node: SchemaNode | None = None
    at = 0
    while at < len(path):
        if node is not None and node.kind in ("leaf", "leaf-list"):
            return None  # what follows is a value
        child = child_named(schema, node, path[at])
        if child is None:
            child = flat_list(node)  # interfaces ge-0/0/0: the word is the entry's key
            if child is None:
                return f"syntax error: {path[at]}"
        else:
            at += 1
        if child.kind == "list":
            at += len(child.keys)
        node = child
    return None


def select_set(text: str, path: Sequence[str]) -> str:
    """The ``set`` lines at or below ``path`` (``show configuration system | display set``)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if path:
        lines = [line for line in lines if _words(line)[1 : 1 + len(path)] == list(path)]
    return "".join(line + "\n" for line in lines)


# -- tables -----------------------------------------------------------------------------------


def commit_table(commits: Sequence[Commit]) -> str:
    """Junos's ``show system commit``: number, time, user, client; the comment below."""
    out = []
    for c in commits:
        out.append(f"{c.number:<3} {c.time} by {c.user} via {c.client}")
        if c.comment:
            out.append(f"    {c.comment}")
    return "".join(line + "\n" for line in out)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    return "".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n" for row in (header, *rows)
    )  # fmt: skip


def session_table(sessions: Sequence[SessionInfo]) -> str:
    """``show system users``: one row per NETCONF session; ``*`` marks this one."""
    rows = [(f"{s.session_id}{'*' if s.current else ''}", s.user, s.source,
             s.login_time.replace("T", " ").replace("Z", " UTC"), str(s.rpcs))
            for s in sessions]  # fmt: skip
    return table(("SESSION", "USER", "FROM", "LOGIN", "RPCS"), rows)


def flow_tap_text(state: dict[str, Any]) -> str:
    """``show services flow-tap``: the status, then each counter on its own line."""
    out = [f"Flow-tap status: {state['status']}"]
    out += [f"  Degraded: {reason}" for reason in state["degraded-reason"]]
    if state["interface"]:
        out.append(f"Interface: {state['interface']}")
    if state["capture-device"]:
        out.append(f"Capture devices: {', '.join(state['capture-device'])}")
    labels = [name.replace("-", " ").capitalize().replace("Dtcp", "DTCP") + ":"
              for name in FLOW_TAP_COUNTERS]  # fmt: skip
    width = max(len(label) for label in labels)
    out += [f"{label:<{width}} {state[name]}"
            for label, name in zip(labels, FLOW_TAP_COUNTERS, strict=True)]  # fmt: skip
    return "".join(line + "\n" for line in out)
