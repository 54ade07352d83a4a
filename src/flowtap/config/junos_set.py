"""Junos ``set``/``delete`` lines and ``show | compare`` output, on the statement view of
:mod:`flowtap.config.junos_text`. Pure functions: trees and text in, trees and text out.

``load set`` applies its lines one after the other; the caller applies the edits they become
in order, all or nothing. ``show | compare`` is Junos's hierarchical
patch: one ``[edit path]`` section per level that changed, removed statements with ``-`` and
added ones with ``+``, a changed leaf as both.
"""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree

from flowtap.config.edit import OPERATION
from flowtap.config.junos_text import (
    JunosSyntaxError,
    JunosTooBig,
    Node,
    Placer,
    child_named,
    flat_list,
    nodes_of,
    quote,
    render_lines,
    tokens,
)
from flowtap.config.schema import Schema, SchemaNode
from flowtap.config.xmlutil import new_root

VERBS = {"set": None, "delete": "remove"}  # delete of a missing statement is no error (Junos)


def parse_set(text: str, schema: Schema, limit: int | None = None
              ) -> list[tuple[etree._Element, str]]:  # fmt: skip
    """The ``set``/``delete`` lines as edits to apply in order: each a datastore tree and its
    default operation. Consecutive lines of one verb share an edit (a line costs what it
    changes, not a copy of the datastore); a delete's edit has ``operation="remove"`` on what
    it names and default operation ``none``, so its path creates no container above what it
    deletes (a presence container would appear). Blank lines and ``#`` comments are skipped;
    more than ``limit`` lines raise JunosTooBig."""
    edits: list[tuple[etree._Element, str]] = []
    previous = None
    placer = Placer()
    lines = text.splitlines()
    if limit is not None and sum(1 for line in lines if line.strip()) > limit:
        raise JunosTooBig(f"more than {limit} statements")
    for number, line in enumerate(lines, 1):
        words = [(piece, quoted) for piece, quoted, _ in tokens(line)]
        if not words:
            continue
        verb = words[0][0]
        if verb not in VERBS or words[0][1]:
            raise JunosSyntaxError(f"syntax error: {verb} (only set and delete lines)", verb,
                                   number)  # fmt: skip
        values = [t for t, quoted in words[1:] if quoted or t not in ("[", "]")]
        if not values:
            raise JunosSyntaxError(f"syntax error: {verb} needs a statement", verb, number)
        if verb != previous:
            edits.append((new_root(), "merge" if VERBS[verb] is None else "none"))
            previous, placer = verb, Placer()
        _line(placer, edits[-1][0], values, VERBS[verb], schema, number)
    return edits


def _line(placer: Placer, root: etree._Element, words: list[str], operation: str | None,
          schema: Schema, number: int) -> None:  # fmt: skip
    at: etree._Element = root
    parent = None
    placed: list[etree._Element] = []
    position = 0
    while position < len(words):
        node: SchemaNode | None = child_named(schema, parent, words[position])
        start = position + 1
        if node is None and (flat := flat_list(parent)) is not None:
            node, start = flat, position  # ``interfaces ge-0/0/0``: the word is the key
        if node is None:
            word = words[position]
            raise JunosSyntaxError(f"syntax error: {word}", word, number)
        if node.kind in ("leaf", "leaf-list"):
            values = words[start:]
            if operation is not None and node.kind == "leaf":
                values = []  # ``delete system host-name x`` deletes the leaf whatever it holds
            if operation is not None and node.kind == "leaf-list" and not values:
                raise JunosSyntaxError(f"syntax error: {node.name} needs a value", node.name,
                                       number)  # fmt: skip
            placed = placer.place(at, node, values, number)
            break
        if node.kind == "list":
            stop = start + len(node.keys)
            if stop > len(words):
                raise JunosSyntaxError(f"syntax error: {node.name} needs a name", node.name,
                                       number)  # fmt: skip
            placed = placer.place(at, node, words[start:stop], number)
            position = stop
        else:
            placed = placer.place(at, node, [], number)
            position = start
        at, parent = placed[0], node
    if operation is not None:
        for el in placed:
            el.set(OPERATION, operation)


def render_set(tree: etree._Element, schema: Schema) -> str:
    """A datastore tree as ``set`` lines (``show configuration | display set``)."""
    return "".join(line + "\n" for line in _set_lines(nodes_of(tree, schema), ()))


def _set_lines(nodes: list[Node], prefix: tuple[str, ...]) -> Iterator[str]:
    for node in nodes:
        words = (*prefix, *(quote(w) for w in node.words))
        if node.children:
            yield from _set_lines(node.children, words)
        else:
            yield "set " + " ".join(words)


def compare(old: etree._Element, new: etree._Element, schema: Schema) -> str:
    """``show | compare``: what changes from ``old`` to ``new``, as Junos prints it; a single
    newline when nothing does (what Junos answers, and what PyEZ reads as "no diff")."""
    out: list[str] = []
    _compare(nodes_of(old, schema), nodes_of(new, schema), (), out)
    return "\n".join(out) + "\n"


def _signed(sign: str, node: Node) -> list[str]:
    return [f"{sign}   {line}" for line in render_lines([node])]


def _compare(old: list[Node], new: list[Node], path: tuple[str, ...], out: list[str]) -> None:
    before = {n.ident: n for n in old}
    after = {n.ident: n for n in new}
    lines: list[str] = []
    for node in old:  # removed and changed statements where they were, then the added ones
        now = after.get(node.ident)
        if now is None:
            lines += _signed("-", node)
        elif node.kind == "leaf" and now.words != node.words:
            lines += _signed("-", node) + _signed("+", now)
    for node in new:
        if node.ident not in before:
            lines += _signed("+", node)
    if lines:
        out.append("[edit" + "".join(" " + quote(w) for w in path) + "]")
        out.extend(lines)
    for node in new:
        was = before.get(node.ident)
        if was is not None and was.children is not None and node.children is not None:
            _compare(was.children, node.children, (*path, *node.words), out)
