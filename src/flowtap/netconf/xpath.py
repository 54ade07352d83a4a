"""NETCONF XPath filters (RFC 6241 §8.9): preparing an expression and evaluating it.

An expression is evaluated with the wrapper element ``data`` as context node, so relative paths
start at the root; absolute paths are rewritten to start at the wrapper, which need not be a
document root. Prefixes come from the filter element's in-scope namespaces; an unprefixed
element name matches that name in any namespace (as netopeer2 and ConfD do). A text or attribute
result selects the element that holds it. EXSLT regular expressions are off.

Cost. XPath 1.0 lets a client write polynomial expressions (``//*[count(//*[count(//*)>0])]``
is O(N^3)) and libxml2 can neither be interrupted nor budgeted while it evaluates, holding the
GIL. :func:`prepare` therefore sorts expressions into two kinds:

- *linear* ones (:func:`_is_linear`): a path of at most ``MAX_LINEAR_STEPS`` child steps with
  name tests, whose predicates are positions or comparisons of literals with relative child
  paths, ``.`` and attributes. Every step and every comparison touches each data node at most
  once (the nodes a step starts from are distinct and at one depth, so their children and
  subtrees are disjoint), so the whole evaluation costs a small multiple of reading the data,
  like the reply itself. These run in-process.
- every other expression, which the caller must evaluate in a worker process it can kill at a
  deadline (:mod:`flowtap.netconf.xpath_pool`), on the same data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from lxml import etree

from flowtap.errors import NetconfRpcError

_ROOT_VAR: Final = "flowtap-root"
_NAME: Final = r"[^\W\d][\w.\-\u00B7]*"
_TOKENS: Final = re.compile(
    rf"""
    (?P<ws>\s+)
  | (?P<literal>"[^"]*"|'[^']*')
  | (?P<number>\d+(?:\.\d*)?|\.\d+)
  | (?P<slash>//?)
  | (?P<open>::|[(\[,@])
  | (?P<dot>\.\.?)
  | (?P<close>[)\]])
  | (?P<var>\${_NAME}(?::{_NAME})?)
  | (?P<name>{_NAME}(?::(?:\*|{_NAME}))?)
  | (?P<operator>!=|<=|>=|[=<>+|-])
  | (?P<star>\*)
  | (?P<other>.)
    """,
    re.VERBOSE,
)
MAX_XPATH_NESTING: Final = 6
MAX_LINEAR_STEPS: Final = 12
_MAX_LINEAR_LENGTH: Final = 1024
_COMPARISONS: Final = frozenset({"=", "!=", "<", ">", "<=", ">="})


def _anchor_absolute_paths(expr: str) -> str:
    """Make absolute location paths start at ``$flowtap-root`` instead of the document root.

    Applies the XPath 1.0 lexical rule (§3.7) that tells a path's leading ``/`` from a step
    separator, and ``*``/``and``/``or``/``div``/``mod`` operators from name tests.
    """
    tokens = [(m.lastgroup or "other", m.group()) for m in _TOKENS.finditer(expr)]
    out: list[str] = []
    prev = "open"  # at the start, as after '(': a '/' begins an absolute path
    for i, (kind, text) in enumerate(tokens):
        if kind == "ws":
            out.append(text)
            continue
        if kind == "slash" and prev != "operand":
            nxt_kind, nxt_text = next(((k, t) for k, t in tokens[i + 1 :] if k != "ws"), ("", ""))
            step = text == "//" or nxt_kind in ("name", "star", "dot") or nxt_text == "@"
            # The leading blank keeps e.g. "or/b" from fusing into one name.
            out.append(f" ${_ROOT_VAR}{text}" if step else f" ${_ROOT_VAR}")
            prev = "operator" if step else "operand"
            continue
        name_test = kind == "name" and prev != "operand" and ":" not in text
        out.append(_any_namespace(tokens, i, text) if name_test else text)
        if kind in ("name", "star"):
            prev = "operator" if prev == "operand" else "operand"
        elif kind in ("open", "operator", "slash"):
            prev = "open" if kind == "open" else "operator"
        else:
            prev = "operand"
    return "".join(out)


def _any_namespace(tokens: list[tuple[str, str]], i: int, name: str) -> str:
    """An unprefixed element name test matches that name in any namespace, as netopeer2 and
    ConfD do (netconf-console2 ``-x /system/host-name``); functions, axes and attributes are
    left alone."""
    before = next((t for k, t in reversed(tokens[:i]) if k != "ws"), "")
    after = next((t for k, t in tokens[i + 1 :] if k != "ws"), "")
    if after in ("(", "::") or before in ("@", "::"):
        return name
    return f"*[local-name()='{name}']"


def _nesting(expr: str) -> int:
    """Deepest nesting of brackets and parentheses outside string literals."""
    depth = deepest = 0
    for match in _TOKENS.finditer(expr):
        text = match.group()
        if match.lastgroup == "literal":
            continue
        if text in ("(", "["):
            depth += 1
            deepest = max(deepest, depth)
        elif text in (")", "]"):
            depth -= 1
    return deepest


class _NotLinear(Exception):
    pass


class _LinearShape:
    """Recursive descent over the tokens of the linear subset of XPath 1.0:

        path      := ['/'] step ('/' step)*
        step      := nametest ('[' (number | condition) ']')*
        condition := compare (('and' | 'or') compare)*
        compare   := operand [('=' | '!=' | '<' | '>' | '<=' | '>=') operand]  (one a constant)
        operand   := literal | number | relative
        relative  := ('.' | '@' name | nametest) ('/' ('@' name | nametest))*

    Each name test, each predicate and each comparison counts as one unit of work over the data.
    """

    def __init__(self, expr: str) -> None:
        self.tokens = [(m.lastgroup or "other", m.group())
                       for m in _TOKENS.finditer(expr) if m.lastgroup != "ws"]  # fmt: skip
        self.i = 0
        self.units = 0

    def _peek(self) -> str:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else ""

    def _take(self, *texts: str) -> bool:
        if self.i < len(self.tokens) and self.tokens[self.i][1] in texts:
            self.i += 1
            return True
        return False

    def _unit(self) -> None:
        self.units += 1
        if self.units > MAX_LINEAR_STEPS:
            raise _NotLinear

    def _name_test(self) -> None:
        if self.i >= len(self.tokens) or self.tokens[self.i][0] not in ("name", "star"):
            raise _NotLinear
        self.i += 1
        self._unit()
        if self._peek() in ("(", "::"):
            raise _NotLinear  # a function call or an axis

    def path(self) -> None:
        self._take("/")
        self._step()
        while self._take("/"):
            self._step()
        if self.i != len(self.tokens):
            raise _NotLinear

    def _step(self) -> None:
        self._name_test()
        while self._take("["):
            self._unit()
            if self.i < len(self.tokens) and self.tokens[self.i][0] == "number" and (
                self.i + 1 < len(self.tokens) and self.tokens[self.i + 1][1] == "]"
            ):
                self.i += 1
            else:
                self._compare()
                while self._take("and", "or"):
                    self._compare()
            if not self._take("]"):
                raise _NotLinear

    def _compare(self) -> None:
        left_is_path = self._operand()
        if self._peek() in _COMPARISONS:
            self.i += 1
            self._unit()
            if self._operand() and left_is_path:
                raise _NotLinear  # two node-sets compare every pair: quadratic

    def _operand(self) -> bool:
        """Read an operand; True when it is a path (a node-set)."""
        if self.i < len(self.tokens) and self.tokens[self.i][0] in ("literal", "number"):
            self.i += 1
            return False
        if not self._take("."):
            self._relative_step()
        while self._take("/"):
            self._relative_step()
        return True

    def _relative_step(self) -> None:
        if self._take("@"):
            if self.i >= len(self.tokens) or self.tokens[self.i][0] != "name":
                raise _NotLinear
            self.i += 1
            return
        self._name_test()


def _is_linear(expr: str) -> bool:
    """The expression is in the linear subset (see the module docstring for why it is linear)."""
    if len(expr) > _MAX_LINEAR_LENGTH:
        return False
    try:
        _LinearShape(expr).path()
    except _NotLinear:
        return False
    return True


# Cache keys hold only the prefixes an expression can use, and only short expressions are cached:
# keyed on every in-scope declaration of the request (up to the message cap each), 256 entries
# grew the server by ~75 MB per request (SECURITY.md N5, N8).
_PREFIX_USE: Final = re.compile(rf"({_NAME}):")
_MAX_CACHED_SELECT: Final = 1024

Namespaces = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class XPathQuery:
    select: str  # as the client wrote it
    namespaces: Namespaces  # the prefixes it uses, sorted
    linear: bool  # cheap enough to evaluate in-process (see the module docstring)


def invalid_xpath(message: str) -> NetconfRpcError:
    return NetconfRpcError(
        tag="invalid-value",
        type="protocol",
        message=message,
        info={"bad-attribute": "select", "bad-element": "filter"},
    )


def _shape(select: str) -> tuple[int, bool, frozenset[str]]:
    """Nesting depth, linearity and the prefixes used of an expression."""
    return _nesting(select), _is_linear(select), frozenset(_PREFIX_USE.findall(select))


_cached_shape = lru_cache(maxsize=256)(_shape)


def prepare(select: str, namespaces: Mapping[str, str] | Mapping[str | None, str]) -> XPathQuery:
    """Check an expression's shape and classify it; ``namespaces`` maps prefixes (None ignored)."""
    nesting, linear, used = (_cached_shape if len(select) <= _MAX_CACHED_SELECT
                             else _shape)(select)  # fmt: skip
    if nesting > MAX_XPATH_NESTING:
        # every nested predicate over // multiplies the work: refuse it before it is evaluated
        raise invalid_xpath(f"XPath filter nests deeper than {MAX_XPATH_NESTING} levels")
    nsmap = tuple(sorted((p, u) for p, u in namespaces.items() if p and p in used))
    return XPathQuery(select, nsmap, linear)


@lru_cache(maxsize=256)
def _compile_xpath(select: str, namespaces: Namespaces) -> etree.XPath:
    return etree.XPath(
        _anchor_absolute_paths(select),
        namespaces=dict(namespaces),
        regexp=False,
        smart_strings=True,
    )


def evaluate(data: etree._Element, query: XPathQuery) -> list[etree._Element]:
    """The elements the expression selects in data (holders of selected text and attributes).

    Unbounded for an expression that is not linear: call it in a worker process then."""
    compile_xpath = (_compile_xpath if len(query.select) <= _MAX_CACHED_SELECT
                     else _compile_xpath.__wrapped__)  # fmt: skip
    root: Any = [data]  # a node-set variable; lxml-stubs type the list invariantly
    try:
        result = compile_xpath(query.select, query.namespaces)(data, **{_ROOT_VAR: root})
    except etree.XPathError as exc:
        raise invalid_xpath(f"invalid XPath filter: {exc}") from None
    except ValueError:  # lxml refuses control characters (no XML attribute can carry them)
        raise invalid_xpath("invalid XPath filter: it holds a control character") from None
    if not isinstance(result, list):
        raise invalid_xpath("XPath filter does not select a node-set")
    nodes: list[etree._Element] = []
    for item in result:
        if isinstance(item, etree._Element):
            nodes.append(item)
        elif isinstance(item, etree._ElementUnicodeResult):
            holder = item.getparent()
            if holder is not None and not item.is_tail:
                nodes.append(holder)
    return nodes


def positions(data: etree._Element, nodes: Iterable[etree._Element]) -> list[int]:
    """Document-order positions of nodes within data (data itself is 0); others are dropped."""
    wanted = set(nodes)
    return [i for i, node in enumerate(data.iter()) if node in wanted]


def at_positions(data: etree._Element, wanted: Iterable[int]) -> list[etree._Element]:
    """The nodes of data at document-order positions (the inverse of :func:`positions` on an
    identical tree, such as one parsed from data's serialization)."""
    chosen = set(wanted)
    return [node for i, node in enumerate(data.iter()) if i in chosen]
