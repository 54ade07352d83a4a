"""The YANG schema at run time: libyang for validation, plus a plain index of the schema tree
that the edit engine, access control and with-defaults walk without touching cffi.

Everything that talks to libyang lives here, so the rest of flowtap handles lxml trees only.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import libyang
from libyang.util import c2str
from lxml import etree

from flowtap.config.xmlutil import CONFIG, DATA
from flowtap.errors import ConfigError

LOG = logging.getLogger(__name__)

MODULES = ("flowtap-system", "flowtap-interfaces", "flowtap-services")


def default_yang_dir() -> Path:
    """The YANG directory of an installed wheel, or the repository's ``yang/`` in a checkout."""
    packaged = Path(str(resources.files("flowtap"))) / "_data" / "yang"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "yang"


@dataclass(slots=True)
class SchemaNode:
    """One data node of the schema (choices and cases are flattened away)."""

    name: str
    namespace: str
    prefix: str
    module: str
    kind: str  # "container", "list", "leaf", "leaf-list"
    config: bool = True
    presence: bool = False
    keys: tuple[str, ...] = ()
    default: tuple[str, ...] = ()
    ordered_by_user: bool = False
    mandatory: bool = False
    empty: bool = False  # a leaf of type empty: Junos writes it without a value
    children: dict[tuple[str, str], SchemaNode] = field(default_factory=dict)
    path: str = ""  # "/prefix:a/prefix:b", used for error-path and access rules

    def child(self, namespace: str, name: str) -> SchemaNode | None:
        return self.children.get((namespace, name))

    @property
    def qname(self) -> str:
        return f"{{{self.namespace}}}{self.name}"


class _LogCapture(logging.Handler):
    """Collects libyang's error records (message, location) while one call runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.local = threading.local()

    def start(self) -> list[tuple[str, str]]:
        records: list[tuple[str, str]] = []
        self.local.records = records
        return records

    def emit(self, record: logging.LogRecord) -> None:
        records = getattr(self.local, "records", None)
        if records is not None and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            message = str(args[0])
            location = str(args[1]) if len(args) > 1 else ""
            records.append((message, location))


_CAPTURE = _LogCapture()
_LOCATION = re.compile(r'(?:Data|Schema) location "([^"]*)"')


class Schema:
    """The loaded modules: validation, canonical printing and the schema index."""

    def __init__(self, yang_dir: Path | None = None) -> None:
        self.yang_dir = yang_dir or default_yang_dir()
        search = f"{self.yang_dir}:{self.yang_dir / 'ietf'}"
        self.ctx = libyang.Context(search)
        libyang.configure_logging(True, logging.ERROR)
        ly_log = logging.getLogger("libyang")
        ly_log.propagate = False
        if _CAPTURE not in ly_log.handlers:
            ly_log.addHandler(_CAPTURE)
        self.modules = [self.ctx.load_module(name) for name in MODULES]
        self.roots: dict[tuple[str, str], SchemaNode] = {}
        self.prefix_of: dict[str, str] = {}  # module name -> prefix
        self.namespace_of: dict[str, str] = {}  # module name -> namespace
        for module in self.modules:
            self.prefix_of[module.name()] = module.prefix()
            self.namespace_of[module.name()] = _namespace(module)
            for snode in module.children():
                node = self._index(snode, "")
                if node is not None:
                    self.roots[(node.namespace, node.name)] = node

    # -- schema index ------------------------------------------------------------------------

    def _index(self, snode: libyang.SNode, parent_path: str) -> SchemaNode | None:
        module = snode.module()
        kind = {
            libyang.SNode.CONTAINER: "container",
            libyang.SNode.LIST: "list",
            libyang.SNode.LEAF: "leaf",
            libyang.SNode.LEAFLIST: "leaf-list",
        }.get(snode.nodetype())
        if kind is None:
            return None
        prefix = module.prefix()
        node = SchemaNode(
            name=snode.name(),
            namespace=_namespace(module),
            prefix=prefix,
            module=module.name(),
            kind=kind,
            path=f"{parent_path}/{prefix}:{snode.name()}",
        )
        node.config = not snode.config_false()
        if isinstance(snode, libyang.SContainer):
            node.presence = snode.presence() is not None
        if isinstance(snode, libyang.SList):
            node.keys = tuple(k.name() for k in snode.keys())  # noqa: SIM118 (a method)
            node.ordered_by_user = snode.ordered()
        if isinstance(snode, libyang.SLeaf):
            default = snode.default()
            node.default = () if default is None else (str(default),)
            node.mandatory = snode.mandatory()
            node.empty = snode.type().base() == libyang.Type.EMPTY
        if isinstance(snode, libyang.SLeafList):
            node.ordered_by_user = snode.ordered()
            node.default = tuple(str(d) for d in snode.defaults())
        if kind in ("container", "list"):
            for child in self._data_children(snode):
                indexed = self._index(child, node.path)
                if indexed is not None:
                    node.children[(indexed.namespace, indexed.name)] = indexed
        return node

    @staticmethod
    def _data_children(snode: Any) -> Iterator[libyang.SNode]:
        # choice/case nodes do not appear in instance data: iterate through them
        yield from snode.children(types=(
            libyang.SNode.CONTAINER, libyang.SNode.LIST,
            libyang.SNode.LEAF, libyang.SNode.LEAFLIST,
        ))  # fmt: skip

    def root(self, namespace: str, name: str) -> SchemaNode | None:
        return self.roots.get((namespace, name))

    def iter_nodes(self) -> Iterator[SchemaNode]:
        stack = list(self.roots.values())
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.children.values())

    def node_for(self, element: etree._Element) -> SchemaNode | None:
        """The schema node of an element of a datastore tree (walks up to the top)."""
        chain: list[etree._Element] = []
        el: etree._Element | None = element
        while el is not None and el.tag not in (DATA, CONFIG):
            chain.append(el)
            el = el.getparent()
        node: SchemaNode | None = None
        for item in reversed(chain):
            qn = etree.QName(item)
            ns = qn.namespace or ""
            node = self.root(ns, qn.localname) if node is None else node.child(ns, qn.localname)
            if node is None:
                return None
        return node

    # -- validation and printing ---------------------------------------------------------------

    def _parse(self, payload: bytes, *, validate: bool) -> libyang.DNode | None:
        records = _CAPTURE.start()
        try:
            return self.ctx.parse_data_mem(
                payload, "xml", strict=True, no_state=True, parse_only=not validate
            )
        except libyang.LibyangError as exc:
            raise self._config_error(records, str(exc), validating=validate) from None
        finally:
            _CAPTURE.local.records = None

    def check(self, payload: bytes) -> None:
        """Type and schema check only (edit-config time): element names, values, ranges."""
        if payload.strip():
            dnode = self._parse(payload, validate=False)
            if dnode is not None:
                dnode.free()

    def canonical(self, payload: bytes, *, validate: bool, defaults: bool = False) -> bytes:
        """Parse top-level data elements (no wrapper), check them and print them back in schema
        order. ``validate`` adds must/mandatory/leafref checks (commit); without it only types and
        element names are checked (edit-config). ``defaults`` adds the implicit default nodes."""
        out, dnode = self.canonical_tree(payload, validate=validate, defaults=defaults)
        if dnode is not None:
            dnode.free()
        return out

    def canonical_tree(
        self, payload: bytes, *, validate: bool, defaults: bool = False
    ) -> tuple[bytes, libyang.DNode | None]:
        """:meth:`canonical`, and the parsed tree too: the caller owns it (and frees it)."""
        if not payload.strip():
            return b"", None
        dnode = self._parse(payload, validate=validate)
        if dnode is None:
            return b"", None
        try:
            out = self.print_tree(dnode, defaults=defaults)
        except BaseException:
            dnode.free()
            raise
        return out, dnode

    @staticmethod
    def print_tree(dnode: libyang.DNode, *, siblings: bool = True, defaults: bool = False) -> bytes:
        out = dnode.print_mem(
            "xml", with_siblings=siblings, pretty=False, include_implicit_defaults=defaults
        )
        if out is None:  # libyang prints nothing for only empty non-presence containers
            return b""
        return out.encode() if isinstance(out, str) else bytes(out)

    def fragment(self, payload: bytes) -> libyang.DNode | None:
        """Parse (types and names only, like an edit) data that is part of a larger tree."""
        return self._parse(payload, validate=False)

    def derive(
        self, live: libyang.DNode, change: Callable[[libyang.DNode], libyang.DNode | None]
    ) -> libyang.DNode | None:
        """A validated copy of the tree ``live``, changed by ``change`` (given the copy, it
        returns the copy's first top-level node, or None to give up); the caller owns it. None
        when ``change`` gives up or validation fails: the full commit reports what is wrong."""
        work: libyang.DNode = live.duplicate(with_siblings=True, recursive=True)
        try:
            changed = change(work)
            if changed is None:
                work.free()
                return None
            work = changed
            self.revalidate(work)
        except ConfigError:
            work.free()
            return None
        except BaseException:
            work.free()
            raise
        return work

    def revalidate(self, dnode: libyang.DNode) -> None:
        """Validate a whole tree in place (must, mandatory, leafref, unique, defaults)."""
        records = _CAPTURE.start()
        try:
            dnode.validate_all(no_state=True)
        except libyang.LibyangError as exc:
            raise self._config_error(records, str(exc)) from None
        finally:
            _CAPTURE.local.records = None

    def _config_error(
        self, records: list[tuple[str, str]], fallback: str, *, validating: bool = True
    ) -> ConfigError:
        message, location = records[-1] if records else (fallback, "")
        match = _LOCATION.search(location)
        path = self.xml_path(match.group(1)) if match else None
        tag, app_tag = _classify(message)
        if not validating and app_tag == "must-violation":
            # Parsing alone never evaluates must: an unrecognised message is a type restriction
            # (pattern, range, length) whose YANG error-message replaced libyang's text.
            tag, app_tag = "invalid-value", None
        info: dict[str, str] = {}
        if tag == "unknown-element":
            name = re.search(r'Node "([^"]+)"', message)
            if name:
                info["bad-element"] = name.group(1)
        if path and tag == "invalid-value":
            info.setdefault("bad-element", path.rsplit(":", 1)[-1].split("[")[0])
        return ConfigError(tag=tag, message=message, path=path, app_tag=app_tag, info=info)

    def xml_path(self, json_path: str) -> str:
        """``/flowtap-system:system/login/user[name='x']`` -> ``/fts:system/fts:login/...``."""
        out: list[str] = []
        prefix = ""
        for step in _split_path(json_path):
            module, sep, rest = step.partition(":")
            local = step
            if sep and "[" not in module:
                prefix = self.prefix_of.get(module, module)
                local = rest
            name, bracket, predicate = local.partition("[")
            pred = ""
            if bracket:
                pred = "[" + re.sub(r"(^|\]\[)([\w.-]+)=", rf"\1{prefix}:\2=", predicate)
            out.append(f"{prefix}:{name}{pred}")
        return "/" + "/".join(out)


def _classify(message: str) -> tuple[str, str | None]:
    """libyang message -> (error-tag, error-app-tag), after RFC 6241 App. A / RFC 7950 §15."""
    if "not found as a child" in message:
        return "unknown-element", None
    if message.startswith("Mandatory node"):
        return "data-missing", "missing-element"
    if message.startswith("Duplicate instance"):
        return "data-exists", None
    if message.startswith("Unique data leaf"):
        return "operation-failed", "data-not-unique"
    if message.startswith(("Value", "Invalid", "Unsatisfied")) and "leafref" not in message:
        return "invalid-value", None
    if "leafref" in message or "instance-required" in message:
        return "data-missing", "instance-required"
    return "operation-failed", "must-violation"


def _namespace(module: libyang.Module) -> str:
    return str(c2str(module.cdata.ns))


def _split_path(path: str) -> list[str]:
    steps: list[str] = []
    depth = 0
    quote = ""
    current: list[str] = []
    for ch in path.lstrip("/"):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "/" and depth == 0:
            steps.append("".join(current))
            current = []
            continue
        current.append(ch)
    if current:
        steps.append("".join(current))
    return steps
