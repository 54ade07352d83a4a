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
Word = tuple[str, bool]  # as written, and whether it was quoted (a quoted ``[`` is a value)


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
        if len(words) == 1:
            raise JunosSyntaxError(f"syntax error: {verb} needs a statement", verb, number)
        if verb != previous:
            edits.append((new_root(), "merge" if VERBS[verb] is None else "none"))
            previous, placer = verb, Placer()
        _line(placer, edits[-1][0], words[1:], VERBS[verb], schema, number)
    return edits


def _line(placer: Placer, root: etree._Element, words: list[Word], operation: str | None,
          schema: Schema, number: int) -> None:  # fmt: skip
    """One line's statements below ``root``. As on Junos, the words after a leaf's value are
    more statements beside that leaf: ``set system login user bob class ops full-name Bob``."""
    at: etree._Element = root
    parent = None
    placed: list[etree._Element] = []
    position = 0
    leaf_done = False
    while position < len(words):
        word = _word(words, position, number)
        if leaf_done and operation is not None:
            # Whether Junos deletes every statement of such a line is not documented: a delete
            # that removes more than meant is worse than one refused.
            raise JunosSyntaxError(f"syntax error: {word} (a delete line deletes one statement)",
                                   word, number)  # fmt: skip
        node: SchemaNode | None = child_named(schema, parent, word)
        start = position + 1
        if node is None and (flat := flat_list(parent)) is not None:
            node, start = flat, position  # ``interfaces ge-0/0/0``: the word is the key
        if node is None:
            raise JunosSyntaxError(f"syntax error: {word}", word, number)
        if node.kind in ("leaf", "leaf-list"):
            values, position = _values(node, words, start, operation, number)
            placed = placer.place(at, node, values, number)
            leaf_done = True
            continue  # the next statement is the leaf's sibling: ``at`` stays its parent
        if node.kind == "list":
            stop = start + len(node.keys)
            if stop > len(words):
                raise JunosSyntaxError(f"syntax error: {node.name} needs a name", node.name,
                                       number)  # fmt: skip
            keys = [_word(words, at_key, number) for at_key in range(start, stop)]
            placed = placer.place(at, node, keys, number)
            position = stop
        else:
            placed = placer.place(at, node, [], number)
            position = start
        at, parent = placed[0], node
    if operation is not None:
        for el in placed:
            el.set(OPERATION, operation)


def _word(words: list[Word], position: int, number: int) -> str:
    """The word at ``position``, which must not be a bare bracket (only a leaf-list's values
    may be bracketed)."""
    piece, quoted = words[position]
    if not quoted and piece in ("[", "]"):
        raise JunosSyntaxError(f"syntax error: {piece}", piece, number)
    return piece


def _values(node: SchemaNode, words: list[Word], start: int, operation: str | None,
            number: int) -> tuple[list[str], int]:  # fmt: skip
    """The values of leaf or leaf-list ``node`` from ``start``, and where the next statement
    begins: none for an empty leaf, one word, or a leaf-list's ``[ v1 v2 ]``."""
    if node.empty:
        return [], start
    if start == len(words):
        if operation is not None and node.kind == "leaf":
            return [], start  # ``delete system host-name``: whatever it holds
        raise JunosSyntaxError(f"syntax error: {node.name} needs a value", node.name, number)
    if node.kind == "leaf-list" and words[start] == ("[", False):
        close = next((at for at in range(start + 1, len(words)) if words[at] == ("]", False)),
                     None)  # fmt: skip
        if close is None:
            raise JunosSyntaxError("syntax error: missing ']'", "[", number)
        values = [_word(words, at, number) for at in range(start + 1, close)]
        if not values:
            raise JunosSyntaxError(f"syntax error: {node.name} needs a value", node.name,
                                   number)  # fmt: skip
        return values, close + 1
    value = _word(words, start, number)
    # ``delete system host-name x`` deletes the leaf whatever it holds
    return ([] if operation is not None and node.kind == "leaf" else [value]), start + 1


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
