"""Reading X1 XML: the request bytes through the hardened parser, then an element's children as
the XSD sequence they must be. Pure.

The parser is NETCONF's (:func:`flowtap.netconf.xmlparse.parse_message`): no DTD, no entities,
no network, no huge-tree mode, bounded nesting, markup and attributes, UTF-8 only. X1 adds a
byte cap checked before any parsing, since libxml2 has no whole-document limit
(SECURITY.md §5.3).
"""

from __future__ import annotations

from typing import Final

from lxml import etree

from flowtap.errors import NetconfRpcError
from flowtap.netconf.xmlparse import parse_message
from flowtap.x1.codes import X1TopLevelError, schema_error

MAX_NAME_IN_ERRORS: Final = 64


def parse(data: bytes, max_bytes: int) -> etree._Element:
    """The root element of a request body, or :class:`X1TopLevelError`."""
    if len(data) > max_bytes:
        raise X1TopLevelError(f"request body larger than {max_bytes} bytes")
    try:
        return parse_message(data)
    except NetconfRpcError as exc:
        # The parser's text names the libxml2 error and a position, never the input's content.
        raise X1TopLevelError(f"XML refused: {exc.message}") from None


def local_name(element: etree._Element) -> str:
    """An element's local name, for error texts (capped: it is the sender's own text)."""
    return etree.QName(element).localname[:MAX_NAME_IN_ERRORS]


def leaf(element: etree._Element) -> str | None:
    """The text of an element of simple type; one with element children is a schema error."""
    if len(element):
        raise schema_error(f"{local_name(element)} must hold text, not elements")
    return element.text


class Children:
    """An element's child elements read in XSD sequence order, each name at most once in turn.

    Non-blank text between children is a schema error (complex types here have no mixed
    content). ``end`` refuses whatever was not taken: an unknown, misplaced, repeated or
    wrong-namespace element.
    """

    def __init__(self, parent: etree._Element, context: str | None = None) -> None:
        self.context = context or local_name(parent)
        if (parent.text or "").strip():
            raise schema_error(f"{self.context} must hold elements, not text")
        self.items = list(parent)
        for child in self.items:
            if (child.tail or "").strip():
                raise schema_error(f"{self.context} must hold elements, not text")
        self.pos = 0

    def _next_is(self, tag: str) -> bool:
        return self.pos < len(self.items) and self.items[self.pos].tag == tag

    def optional(self, tag: str) -> etree._Element | None:
        if self._next_is(tag):
            self.pos += 1
            return self.items[self.pos - 1]
        return None

    def required(self, tag: str) -> etree._Element:
        found = self.optional(tag)
        if found is None:
            raise schema_error(f"{self.context} lacks {etree.QName(tag).localname}")
        return found

    def repeated(self, tag: str, minimum: int = 0, maximum: int | None = None,
                 ) -> list[etree._Element]:  # fmt: skip
        found = []
        while self._next_is(tag):
            found.append(self.items[self.pos])
            self.pos += 1
            if maximum is not None and len(found) > maximum:
                raise schema_error(f"{self.context} has more than {maximum} "
                                   f"{etree.QName(tag).localname}")  # fmt: skip
        if len(found) < minimum:
            raise schema_error(f"{self.context} lacks {etree.QName(tag).localname}")
        return found

    def choice(self) -> etree._Element:
        """The single child of an XSD choice (the caller tells the alternatives apart)."""
        if len(self.items) != 1:
            raise schema_error(f"{self.context} must hold exactly one element")
        self.pos = 1
        return self.items[0]

    def end(self) -> None:
        if self.pos < len(self.items):
            raise schema_error(f"unexpected element {local_name(self.items[self.pos])} "
                               f"in {self.context}")  # fmt: skip
