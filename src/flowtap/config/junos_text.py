"""Junos curly-brace configuration text: datastore tree -> text, text -> datastore tree. Pure.

The Junos XML API (``get-configuration format="text"``, ``load-configuration format="text"``)
carries configuration in the CLI's own notation::

    system {
        host-name edge-1;
        login {
            user bob {
                class super-user;
            }
        }
    }
    interfaces {
        ge-0/0/0 {
            unit 0;
        }
    }

The notation follows the schema: a container is ``name { ... }`` (``name;`` when empty), a list
entry ``name key { ... }`` (``name key;`` when it holds only its keys), a leaf ``name value;``
(``name;`` for an empty value), a leaf-list ``name value;`` or ``name [ v1 v2 ];``. A list that
is the only child of a top-level container is written without its own name, as Junos writes
``interfaces { ge-0/0/0 { ... } }`` for ``interfaces interface ge-0/0/0``. Statements may carry
Junos's ``replace:`` and ``delete:`` tags (load); ``#`` and ``/* */`` are comments.

Both directions go through :class:`Node`, the statement view of a tree, which the ``set`` lines
and ``show | compare`` (:mod:`flowtap.config.junos_set`) share.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from lxml import etree

from flowtap.config.edit import OPERATION
from flowtap.config.schema import Schema, SchemaNode
from flowtap.config.xmlutil import new_root

INDENT = "    "
# Junos marks secrets in text output; the comment is skipped when the text is loaded back.
SECRET_LEAVES = frozenset({"encrypted-password", "secret"})
# A value written bare; anything else (blanks, braces, quotes, comment starts, empty) is quoted.
_BARE = re.compile(r"[^\s;{}\[\]\"'#\\]+")
_TOKEN = re.compile(r'\s+|#[^\n]*|/\*.*?\*/|"(?:[^"\\]|\\.)*"|[{};\[\]]|[^\s;{}\[\]"]+', re.DOTALL)
# Nesting a text may have: as deep as the NETCONF parser lets XML be (the schema is < 10 deep),
# so that a hostile ``a { a { a { ...`` fails fast instead of recursing (RecursionError).
MAX_DEPTH = 64
# Statement tags of ``load`` (Junos's ``replace:``/``delete:``) and what they become in an edit.
TAGS = {"replace:": "replace", "delete:": "remove"}


class JunosTooBig(ValueError):
    """More statements than one load may carry (the caller's limit)."""


class JunosSyntaxError(ValueError):
    """Text that is not Junos configuration for this schema. ``word`` is the offending word (the
    request's own, never configuration data); ``line`` is 1-based."""

    def __init__(self, message: str, word: str = "", line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.word = word
        self.line = line


# -- the statement view -----------------------------------------------------------------------


@dataclass(slots=True)
class Node:
    """One statement: ``words`` as written (list names of flat lists left out), ``ident`` what
    identifies it among its siblings, ``children`` None for a leaf (or leaf-list item)."""

    name: str
    kind: str
    words: tuple[str, ...]
    ident: tuple[str, ...]
    children: list[Node] | None


def child_named(schema: Schema, parent: SchemaNode | None, name: str) -> SchemaNode | None:
    """The configuration node called ``name`` below ``parent`` (the top level for None)."""
    nodes = schema.roots.values() if parent is None else parent.children.values()
    for node in nodes:
        if node.name == name and node.config:
            return node
    return None


def flat_list(parent: SchemaNode | None) -> SchemaNode | None:
    """The list written without its name below ``parent``: the only child of a top-level
    container, as Junos's ``interfaces``, ``routing-instances`` or ``groups`` (deeper down,
    ``family inet { address 10.0.0.1/24; }`` keeps its name)."""
    if parent is None or parent.kind != "container" or len(parent.children) != 1:
        return None
    if parent.path.count("/") != 1:
        return None
    (only,) = parent.children.values()
    return only if only.kind == "list" else None


def nodes_of(tree: etree._Element, schema: Schema, parent: SchemaNode | None = None) -> list[Node]:
    """The statement view of ``tree``'s children (a datastore tree, or an element below it whose
    schema node is ``parent``). Elements the schema does not know are left out."""
    out: list[Node] = []
    for el in tree:
        if not isinstance(el.tag, str):
            continue
        q = etree.QName(el)
        node = (schema.root(q.namespace or "", q.localname) if parent is None
                else parent.child(q.namespace or "", q.localname))  # fmt: skip
        if node is None or not node.config:
            continue
        out.append(_node(el, node, flat_list(parent) is node))
    return out


def _node(el: etree._Element, node: SchemaNode, flat: bool) -> Node:
    text = (el.text or "").strip()
    if node.kind == "leaf":
        return Node(node.name, "leaf", (node.name, text) if text else (node.name,), (node.name,),
                    None)  # fmt: skip
    if node.kind == "leaf-list":
        return Node(node.name, "leaf-list", (node.name, text), (node.name, text), None)
    keys = tuple((el.findtext(f"{{{node.namespace}}}{k}") or "").strip() for k in node.keys)
    words = keys if flat else (node.name, *keys)
    below = _by_tag(node)
    inner = flat_list(node)
    children = [
        _node(c, sub, sub is inner) for c in el if (sub := below.get(c.tag)) is not None
    ]  # fmt: skip
    return Node(node.name, node.kind, words, (node.name, *keys), children)


_BY_TAG: dict[int, tuple[SchemaNode, dict[object, SchemaNode]]] = {}


def _by_tag(node: SchemaNode) -> dict[object, SchemaNode]:
    """``node``'s configuration children by element tag, its list keys left out (they are in
    the entry's words): one dict lookup per element instead of two QName parses."""
    cached = _BY_TAG.get(id(node))
    if cached is None or cached[0] is not node:  # an id reused by another schema's node
        keys = set(node.keys) if node.kind == "list" else set()
        cached = (node, {c.qname: c for c in node.children.values()
                         if c.config and c.name not in keys})  # fmt: skip
        _BY_TAG[id(node)] = cached
    return cached[1]


# -- rendering ----------------------------------------------------------------------------------


def quote(word: str) -> str:
    if _BARE.fullmatch(word) and "$" not in word:
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(tree: etree._Element, schema: Schema) -> str:
    """A datastore tree as Junos configuration text (ends with a newline when not empty)."""
    return "".join(line + "\n" for line in render_lines(nodes_of(tree, schema)))


def render_lines(nodes: list[Node], depth: int = 0) -> Iterator[str]:
    pad = INDENT * depth
    index = 0
    while index < len(nodes):
        node = nodes[index]
        if node.kind == "leaf-list":  # consecutive values of one leaf-list: one statement
            group = [node]
            while index + len(group) < len(nodes) and nodes[index + len(group)].name == node.name:
                group.append(nodes[index + len(group)])
            index += len(group)
            values = [quote(n.words[1]) for n in group]
            body = values[0] if len(values) == 1 else "[ " + " ".join(values) + " ]"
            yield f"{pad}{node.name} {body};"
            continue
        index += 1
        head = " ".join(quote(w) for w in node.words)
        if node.children is None:
            yield f"{pad}{head};" + (" ## SECRET-DATA" if node.name in SECRET_LEAVES else "")
        elif not node.children:
            yield f"{pad}{head};"
        else:
            yield f"{pad}{head} {{"
            yield from render_lines(node.children, depth + 1)
            yield f"{pad}}}"


# -- parsing ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Statement:
    words: list[str]
    values: list[str] | None  # a bracketed ``[ v1 v2 ]`` list
    children: list[Statement] | None  # None: ended with ``;``
    line: int
    tag: str | None = None  # "replace" or "remove" (a load's ``replace:``/``delete:``)


def tokens(text: str) -> Iterator[tuple[str, bool, int]]:
    """(piece, quoted, line) for each word or punctuation mark; comments and blanks skipped."""
    line = 1
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # only an unterminated quote gets here
            raise JunosSyntaxError("syntax error: unterminated quoted string", '"', line)
        piece = match.group()
        position = match.end()
        if piece[0] == '"':
            yield re.sub(r"\\(.)", r"\1", piece[1:-1]), True, line
        elif not piece[0].isspace() and piece[0] != "#" and not piece.startswith("/*"):
            yield piece, False, line
        line += piece.count("\n")


def statements(text: str, limit: int | None = None) -> list[Statement]:
    """Parse curly-brace text into statements (no schema yet); at most ``limit`` statements
    (JunosTooBig past it, found before the text is even fully read: a statement is a few
    tokens, so 16 per statement is a generous cap on what is read)."""
    stream = list(itertools.islice(tokens(text), None if limit is None else 16 * limit + 1))
    if limit is not None and len(stream) > 16 * limit:
        raise JunosTooBig(f"more than {limit} statements")
    out, end = _block(stream, 0, 0)
    if end != len(stream):
        raise JunosSyntaxError("syntax error: unexpected '}'", "}", stream[end][2])
    if limit is not None and _count(out) > limit:
        raise JunosTooBig(f"more than {limit} statements")
    return out


def _count(items: list[Statement]) -> int:
    return sum(1 + _count(s.children or []) + len(s.values or []) for s in items)


def _block(stream: list[tuple[str, bool, int]], at: int, depth: int
           ) -> tuple[list[Statement], int]:  # fmt: skip
    """The statements from ``at`` to the ``}`` closing this block (depth 0: the whole text)."""
    top = depth == 0
    if depth > MAX_DEPTH:
        raise JunosSyntaxError(f"syntax error: nested deeper than {MAX_DEPTH} levels", "{",
                               stream[at - 1][2])  # fmt: skip
    out: list[Statement] = []
    while at < len(stream):
        piece, quoted, line = stream[at]
        if piece == "}" and not quoted:
            if top:
                return out, at
            return out, at + 1
        words: list[str] = []
        tag = None
        while at < len(stream):
            piece, quoted, line = stream[at]
            if not quoted and piece in "{};[]":
                break
            if not words and not quoted and tag is None and piece in TAGS:
                tag = TAGS[piece]
            elif not quoted and piece.endswith(":") and not words and piece[:-1].isalpha():
                raise JunosSyntaxError(f"syntax error: {piece} is not supported", piece, line)
            else:
                words.append(piece)
            at += 1
        if at == len(stream):
            raise JunosSyntaxError("syntax error: missing ';' or '}'", words[-1] if words else "",
                                   line)  # fmt: skip
        if not words:
            raise JunosSyntaxError(f"syntax error: unexpected '{piece}'", piece, line)
        statement = Statement(words, None, None, line, tag)
        if piece == "[":
            close = at + 1
            while close < len(stream) and not (stream[close][0] == "]" and not stream[close][1]):
                close += 1
            statement.values = [t for t, _, _ in stream[at + 1 : close]]
            at = close + 1
            if at >= len(stream) or stream[at][0] != ";":
                raise JunosSyntaxError("syntax error: missing ';' after ']'", "]", line)
            at += 1
        elif piece == "{":
            statement.children, at = _block(stream, at + 1, depth + 1)
        elif piece == ";":
            at += 1
        else:
            raise JunosSyntaxError(f"syntax error: unexpected '{piece}'", piece, line)
        out.append(statement)
    if not top:
        raise JunosSyntaxError("syntax error: missing '}'", "", stream[-1][2] if stream else 0)
    return out, at


def parse(text: str, schema: Schema, *, replace: bool = True, limit: int | None = None
          ) -> etree._Element:  # fmt: skip
    """Curly-brace text -> a datastore tree, for an edit: ``operation`` attributes where the
    text carried ``delete:`` tags, and ``replace:`` tags too when ``replace`` (Junos honours
    them under ``load replace`` only). Raises JunosSyntaxError, or JunosTooBig past ``limit``
    statements."""
    root = new_root()
    _build(statements(text, limit), None, root, schema, replace, Placer())
    return root


def _build(
    items: Iterable[Statement],
    parent: SchemaNode | None,
    at: etree._Element,
    schema: Schema,
    replace: bool,
    placer: Placer,
) -> None:
    for statement in items:
        words = statement.words
        if parent is None and words[0] == "version" and len(words) == 2:
            continue  # Junos's own first statement: the software version, not configuration
        node = child_named(schema, parent, words[0])
        if node is None and (flat := flat_list(parent)) is not None:
            node, words = flat, [flat.name, *words]
        if node is None:
            raise JunosSyntaxError(f"syntax error: {words[0]}", words[0], statement.line)
        values = [*words[1:], *(statement.values or [])]
        leaf = node.kind in ("leaf", "leaf-list")
        if leaf and statement.children is not None:
            raise JunosSyntaxError(f"syntax error: {node.name} takes no block", node.name,
                                   statement.line)  # fmt: skip
        for el in placer.place(at, node, values, statement.line):
            if statement.tag == "remove" or (statement.tag == "replace" and replace):
                el.set(OPERATION, statement.tag)
            if statement.children:
                _build(statement.children, node, el, schema, replace, placer)


class Placer:
    """Puts statements into a tree under construction, merging repeated ones (a statement may
    be given twice: the second adds to the first). List entries and leaf-list values are found
    through an index, so building costs what the text holds, not its square."""

    def __init__(self) -> None:
        self._index: dict[tuple[etree._Element, str], dict[tuple[str, ...], etree._Element]] = {}

    def _entries(self, at: etree._Element, node: SchemaNode
                 ) -> dict[tuple[str, ...], etree._Element]:  # fmt: skip
        key = (at, node.qname)  # the element itself is kept alive (and its proxy with it)
        found = self._index.get(key)
        if found is None:
            found = self._index[key] = {}
        return found

    def place(self, at: etree._Element, node: SchemaNode, values: list[str], line: int
              ) -> list[etree._Element]:  # fmt: skip
        """The element(s) for ``node`` with ``values`` below ``at``, made unless there."""
        if node.kind == "leaf":
            if len(values) > 1:
                raise JunosSyntaxError(f"syntax error: {values[1]}", values[1], line)
            el = at.find(node.qname)
            if el is None:
                el = sub_element(at, node)
            el.text = values[0] if values else None
            return [el]
        entries = self._entries(at, node)
        if node.kind == "leaf-list":
            if not values:
                raise JunosSyntaxError(f"syntax error: {node.name} needs a value", node.name,
                                       line)  # fmt: skip
            placed = []
            for value in values:
                found = entries.get((value,))
                if found is None:
                    found = entries[(value,)] = sub_element(at, node)
                    found.text = value
                placed.append(found)
            return placed
        if node.kind == "container":
            el = at.find(node.qname)
            return [el if el is not None else sub_element(at, node)]
        if len(values) != len(node.keys):
            word = values[len(node.keys)] if len(values) > len(node.keys) else node.name
            raise JunosSyntaxError(f"syntax error: {word}", word, line)
        el = entries.get(tuple(values))
        if el is None:
            el = entries[tuple(values)] = sub_element(at, node)
            for name, value in zip(node.keys, values, strict=True):
                etree.SubElement(el, f"{{{node.namespace}}}{name}").text = value
        return [el]


def sub_element(at: etree._Element, node: SchemaNode) -> etree._Element:
    """A new child of ``at`` for ``node``, declaring its namespace where it changes."""
    if etree.QName(at).namespace == node.namespace:
        return etree.SubElement(at, node.qname)
    return etree.SubElement(at, node.qname, nsmap={None: node.namespace})  # type: ignore[dict-item]
