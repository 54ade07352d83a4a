"""Fuzz target: the Junos text codecs (config/junos_text.py, junos_set.py) on untrusted text,
what ``load-configuration format="text"`` and ``action="set"`` parse.

The first input byte picks the mode: even, the rest is curly-brace text for ``parse``; odd,
``set``/``delete`` lines for ``parse_set``. The rest is UTF-8 (undecodable bytes replaced, and
characters XML cannot carry removed: the NETCONF parser refuses them before any load sees them).

Documented outcome: a tree (or edits), ``JunosSyntaxError`` or ``JunosTooBig``. Invariant: what
parses renders to text that parses back to a tree rendering the same text (render is a fixed
point after one round), and every edit holds only elements the schema knows.
"""

from __future__ import annotations

import re

from flowtap.config import junos_set, junos_text
from flowtap.config.junos_text import JunosSyntaxError, JunosTooBig
from flowtap.config.schema import Schema
from tests.fuzz.support import check

LIMIT = 2000
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_schema: Schema | None = None


def _known(schema: Schema) -> frozenset[str]:
    return frozenset(node.qname for node in schema.iter_nodes())


def fuzz_one(data: bytes) -> None:
    global _schema
    if not data:
        return
    if _schema is None:
        _schema = Schema()
    schema = _schema
    text = _NOT_XML_CHAR.sub("", data[1:].decode("utf-8", "replace"))
    known = _known(schema)
    try:
        if data[0] % 2 == 0:
            trees = [junos_text.parse(text, schema, limit=LIMIT)]
        else:
            trees = [tree for tree, _ in junos_set.parse_set(text, schema, limit=LIMIT)]
    except (JunosSyntaxError, JunosTooBig):
        return
    for tree in trees:
        for el in tree.iterdescendants():
            check(isinstance(el.tag, str) and el.tag in known, f"unknown element {el.tag!r}")
        rendered = junos_text.render(tree, schema)
        again = junos_text.render(junos_text.parse(rendered, schema), schema)
        check(again == rendered, "render(parse(render(tree))) differs from render(tree)")
