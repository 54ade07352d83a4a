"""Junos login-class authorization of the configuration: which permission bits read or write each
configuration hierarchy, whichever front end (NETCONF today) reads or edits it.

Reads are pruned silently (a subtree the user may not see is simply absent, exactly as if it were
not configured); writes are checked on the diff a commit or edit would make, and refused with
``access-denied`` without echoing any value.

Both cost what the hierarchies a class may not read or write hold, not what the configuration
holds: a pruned datastore is serialized once per tree and set of hidden rules (the datastores
keep it), and a write is checked on the part of the diff inside the hierarchies the class may
not write (:func:`check_write_between`).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config.diff import Change, Scope, changes
from flowtap.config.edit import OPERATION
from flowtap.config.permissions import LI_FLAGS
from flowtap.config.schema import Schema, SchemaNode
from flowtap.config.xmlutil import discard, new_root
from flowtap.errors import ConfigError

VIEW = frozenset({"view", "view-configuration"})


@dataclass(frozen=True, slots=True)
class Rule:
    schema_path: str
    read: frozenset[str]  # any one of these grants reading
    write: frozenset[str]  # any one of these (plus "configure") grants writing


# Longest matching schema path wins. Paths use the YANG module prefixes.
RULES = (
    Rule("/ftsvc:services/ftsvc:flow-tap",
         frozenset({"flow-tap"}), frozenset({"flow-tap-control"})),
    Rule("/fts:system/fts:services/fts:flow-tap-dtcp",
         frozenset({"flow-tap"}), frozenset({"flow-tap-control"})),
    # all agencies' totals: not for a mediation device (flow-tap-operation), which sees its own
    # criteria over DTCP only (issue 13 item 4)
    Rule("/ftsvc:flow-tap-state", frozenset({"flow-tap"}), frozenset()),
    Rule("/ftsvc:services", VIEW, frozenset({"configure"})),
    Rule("/fts:system/fts:login", frozenset({"admin"}), frozenset({"admin-control"})),
    Rule("/fts:system/fts:login/fts:user/fts:authentication/fts:encrypted-password",
         frozenset({"secret"}), frozenset({"admin-control"})),
    Rule("/fts:system/fts:radius-server/fts:secret",
         frozenset({"secret"}), frozenset({"system-control"})),
    Rule("/fts:system", VIEW | {"system"}, frozenset({"system-control"})),
    Rule("/fti:interfaces", VIEW | {"interface"}, frozenset({"interface-control"})),
)  # fmt: skip

_BY_LENGTH = sorted(RULES, key=lambda r: len(r.schema_path), reverse=True)
CLASS_PERMISSIONS = "/fts:system/fts:login/fts:class/fts:permissions"


@functools.lru_cache(maxsize=2048)  # schema paths: a few hundred, looked up for every edited node
def rule_for(schema_path: str) -> Rule | None:
    for rule in _BY_LENGTH:
        if schema_path == rule.schema_path or schema_path.startswith(rule.schema_path + "/"):
            return rule
    return None


def may_read(principal: Principal, schema_path: str) -> bool:
    rule = rule_for(schema_path)
    return rule is None or principal.has(*rule.read)


class ReadFilter:
    """Prunes what a principal may not read. Compiled once per schema."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        ns = {n.prefix: n.namespace for n in schema.iter_nodes()}
        self.finders = [
            (rule, etree.XPath(self._xpath(rule.schema_path), namespaces=ns))
            for rule in sorted(RULES, key=lambda r: len(r.schema_path))
        ]
        self._hidden: dict[frozenset[str], tuple[int, ...]] = {}

    @staticmethod
    def _xpath(schema_path: str) -> str:
        return "/*" + schema_path  # the datastore root is <data>

    def hidden(self, principal: Principal) -> tuple[int, ...]:
        """The rules whose subtrees ``principal`` may not read (positions in ``finders``): what
        pruning depends on besides the tree, so principals of equal ``hidden`` see equal data."""
        answer = self._hidden.get(principal.permissions)
        if answer is None:
            answer = tuple(
                i for i, (rule, _) in enumerate(self.finders) if not principal.has(*rule.read)
            )
            if len(self._hidden) < 1024:  # a handful of classes in practice
                self._hidden[principal.permissions] = answer
        return answer

    def sees_everything(self, principal: Principal) -> bool:
        return not self.hidden(principal)

    def prune(self, tree: etree._Element, principal: Principal) -> etree._Element:
        """Return ``tree`` itself when nothing is hidden, else a pruned copy."""
        hidden = self.hidden(principal)
        if not hidden:
            return tree
        pruned = etree.fromstring(etree.tostring(tree))
        self._remove(pruned, hidden)
        return pruned

    def pruned_bytes(self, tree: etree._Element, hidden: tuple[int, ...]) -> bytes | None:
        """``tree``'s top-level elements serialized without the subtrees of the ``hidden``
        rules: what ``prune`` would leave, copying only the top-level elements that hold
        something hidden (usually none, or one small part of the configuration). None when
        ``tree`` holds nothing hidden: the caller has its whole serialization already."""
        found = self._found(tree, hidden)
        if not found:
            return None
        tops: list[etree._Element] = []
        for el in found:
            top = el
            while (parent := top.getparent()) is not None and parent is not tree:
                top = parent
            if not any(top is seen for seen in tops):
                tops.append(top)
        parts: list[bytes] = []
        for child in tree:
            if not any(child is top for top in tops):
                parts.append(etree.tostring(child))
                continue
            holder = new_root()  # a datastore root of its own, for the absolute finders
            holder.append(copy.deepcopy(child))
            self._remove(holder, hidden)
            parts.extend(etree.tostring(el) for el in holder)
        return b"".join(parts)

    def _found(self, tree: etree._Element, hidden: tuple[int, ...]) -> list[etree._Element]:
        found: list[etree._Element] = []
        for index in hidden:
            result = self.finders[index][1](tree)
            if isinstance(result, list):
                found.extend(el for el in result if isinstance(el, etree._Element))
        return found

    def _remove(self, root: etree._Element, hidden: tuple[int, ...]) -> None:
        for index in hidden:  # shortest rule first, as ``finders`` are sorted
            for el in self._found(root, (index,)):
                parent = el.getparent()
                if parent is not None:
                    discard(parent, el)  # hidden: its content is never read
                    self._drop_emptied(parent)

    def _drop_emptied(self, el: etree._Element) -> None:
        """Remove non-presence containers that pruning left empty: an empty ``<services/>`` would
        show that hidden data exists (LI-1), and a non-presence container carries no meaning of
        its own (RFC 7950 §7.5.1), so without the hidden data it would not be there at all."""
        parent = el.getparent()
        while parent is not None and len(el) == 0:
            node = self.schema.node_for(el)
            if node is None or node.kind != "container" or node.presence:
                return
            parent.remove(el)
            el, parent = parent, parent.getparent()


_ALL_WRITE = frozenset().union(*(r.write for r in RULES)) | {"configure", "flow-tap-control"}


def writes_everything(principal: Principal) -> bool:
    """True when no change could be refused (the diff need not even be computed)."""
    return principal.permissions >= _ALL_WRITE


def check_write_between(
    principal: Principal, schema: Schema, old: etree._Element | None, new: etree._Element | None
) -> None:
    """``check_write`` on the diff from ``old`` to ``new``, computing only the part of that diff
    that could be refused: the changes inside the hierarchies ``principal`` may not write, and
    whether the lawful-intercept bits of any login class change. The refusals are exactly
    ``check_write``'s on the whole diff (tests/config/test_write_scope.py compares the two)."""
    if writes_everything(principal):
        return
    if not principal.has("configure"):  # any change at all is refused: the whole diff decides
        check_write(principal, changes(schema, old, new))
        return
    check_write(principal, changes(schema, old, new, scope=_unwritable(principal.permissions)))
    if not principal.has("flow-tap-control") and _GRANTS.of(old) != _GRANTS.of(new):
        raise _denied()


@functools.lru_cache(maxsize=256)
def _unwritable(permissions: frozenset[str]) -> Scope:
    return Scope(frozenset(r.schema_path for r in RULES if not permissions & r.write))


@functools.lru_cache(maxsize=256)
def write_guarded(permissions: frozenset[str]) -> frozenset[str]:
    """The hierarchies a change inside which :func:`check_write_between` may refuse for this
    class: those of the rules it may not write, and the login classes' permissions (an LI
    grant) without ``flow-tap-control``. With ``configure``, a change outside all of them is
    never refused: the rule of each changed node is one of them or grants the write."""
    paths = {r.schema_path for r in RULES if not permissions & r.write}
    if "flow-tap-control" not in permissions:
        paths.add(CLASS_PERMISSIONS)
    return frozenset(paths)


def needs_no_write_check(principal: Principal, reached: frozenset[str] | None) -> bool:
    """True when changes confined to the guarded hierarchies ``reached`` (None: unknown) need no
    write check for ``principal`` (see :mod:`flowtap.config.reach`)."""
    return (reached is not None and principal.has("configure")
            and reached.isdisjoint(write_guarded(principal.permissions)))  # fmt: skip


_SYSTEM = "{urn:flowtap:yang:system}"
_CLASS_PATH = (f"{_SYSTEM}class", f"{_SYSTEM}login", f"{_SYSTEM}system")


def _li_grants(tree: etree._Element | None) -> set[tuple[str, str]]:
    """(class name, LI flag) for every LI bit a login class holds: the diff sees a grant or a
    revocation (``_grants_li``) exactly when these differ between its two sides."""
    found: set[tuple[str, str]] = set()
    if tree is None:
        return found
    # libxml2 walks the tree for the tag faster than XPath or a walk down in Python would
    for el in tree.iter(f"{_SYSTEM}permissions"):
        flag = (el.text or "").strip()
        if flag not in LI_FLAGS:
            continue
        holder = el.getparent()
        if holder is not None and _is_class(holder, tree):
            found.add(((holder.findtext(f"{_SYSTEM}name") or "").strip(), flag))
    return found


class _RecentGrants:
    """``_li_grants`` of the last two trees, by identity. A datastore tree is a value (see
    :mod:`flowtap.config.datastores`) and each is checked several times: as the new side of an
    edit, then of the commit, then as the old side of the next edit and commit. Two entries
    hold running and the candidate, which are alive anyway."""

    def __init__(self) -> None:
        self._recent: list[tuple[etree._Element, frozenset[tuple[str, str]]]] = []

    def of(self, tree: etree._Element | None) -> frozenset[tuple[str, str]]:
        if tree is None:
            return frozenset()
        for known, grants in self._recent:
            if known is tree:
                return grants
        grants = frozenset(_li_grants(tree))
        self._recent = [*self._recent[-1:], (tree, grants)]
        return grants


_GRANTS = _RecentGrants()


def _is_class(el: etree._Element, root: etree._Element) -> bool:
    """``el`` is a login class: /system/login/class below the datastore root."""
    at: etree._Element | None = el
    for tag in _CLASS_PATH:
        if at is None or at.tag != tag:
            return False
        at = at.getparent()
    return at is root


def check_write(principal: Principal, diff: list[Change]) -> None:
    """Refuse a diff the principal may not make. The error names no value and no path."""
    if not diff:
        return
    if not principal.has("configure"):
        raise _denied("configure")
    for change in diff:
        for path in _touched_paths(change):
            rule = rule_for(path)
            if rule is not None and not principal.has(*rule.write):
                raise _denied_by(rule, principal)
        if _grants_li(change) and not principal.has("flow-tap-control"):
            raise _denied()


@functools.lru_cache(maxsize=256)
def _concealed(permissions: frozenset[str]) -> tuple[str, ...]:
    """The schema paths of the rules a class may neither read nor write: it must not learn
    whether such data exists or what it holds, not even from the outcome of an edit."""
    may_write = "configure" in permissions
    return tuple(
        rule.schema_path for rule in RULES
        if not permissions & rule.read and not (may_write and permissions & rule.write)
    )  # fmt: skip


def conceals_anything(principal: Principal) -> bool:
    return bool(_concealed(principal.permissions))


_REMOVING = frozenset({"delete", "remove", "replace"})


@dataclass(frozen=True, slots=True)
class EditSpots:
    """What an edit-config names, read off the edit alone: the schema path of every element it
    holds and the operation in effect there. Below an element the schema lacks nothing is
    looked at (the edit engine reports it); ``whole`` is a replace of the whole datastore."""

    whole: bool
    unknown: bool  # some element is unknown to the schema
    named: tuple[tuple[str, str], ...]  # (schema path, operation)


def edit_spots(schema: Schema, config: etree._Element, default_operation: str) -> EditSpots:
    named: list[tuple[str, str]] = []
    unknown = False
    stack: list[tuple[etree._Element, SchemaNode | None, str]] = [
        (child, None, default_operation) for child in config
    ]
    while stack:
        el, parent, inherited = stack.pop()
        if not isinstance(el.tag, str):
            continue
        qname = etree.QName(el)
        namespace = qname.namespace or ""
        node = (schema.root(namespace, qname.localname) if parent is None
                else parent.child(namespace, qname.localname))  # fmt: skip
        if node is None:
            unknown = True
            continue
        operation = str(el.get(OPERATION, inherited))
        named.append((node.path, operation))
        stack.extend((child, node, operation) for child in el)
    return EditSpots(default_operation == "replace", unknown, tuple(named))


def check_edit_request(principal: Principal, spots: EditSpots) -> None:
    """Refuse, before anything is applied, an edit whose outcome could depend on concealed data.

    Applying such an edit first would answer data-exists, data-missing, ok or access-denied
    according to data the principal cannot see: an oracle for its existence and its values
    (LI-1). So an edit that names a concealed node, or deletes, removes or replaces an ancestor
    of one (or replaces the whole datastore), is refused outright. Elements unknown to the schema
    are left to the edit engine to report.
    """
    concealed = _concealed(principal.permissions)
    if not concealed:
        return
    if spots.whole:
        raise _denied()
    for path, operation in spots.named:
        rule = rule_for(path)
        if rule is not None and rule.schema_path in concealed:
            raise _denied()
        if operation in _REMOVING and any(p.startswith(path + "/") for p in concealed):
            raise _denied()


def _denied(missing: str = "", where: str = "") -> ConfigError:
    """The refusal of a write. Naming the missing permission tells nothing the user could not
    read already, except for lawful-intercept hierarchies (LI-1): those get the generic text."""
    if not missing:
        text = "the login class lacks the permission for this change"
    elif not where:
        text = f"the login class lacks the {missing} permission"
    else:
        text = f"changing {where} needs the {missing} permission"
    return ConfigError(tag="access-denied", type="application", message=f"Access denied: {text}")


def _denied_by(rule: Rule, principal: Principal) -> ConfigError:
    lawful_intercept = rule.read <= LI_FLAGS or bool(rule.write & LI_FLAGS)
    if lawful_intercept or not principal.has(*rule.read):
        return _denied()
    where = " ".join(step.split(":")[-1] for step in rule.schema_path.strip("/").split("/"))
    return _denied(" or ".join(sorted(rule.write)), where)


def _touched_paths(change: Change) -> list[str]:
    """A created or deleted subtree touches every schema node actually inside it."""
    element = change.new if change.new is not None else change.old
    paths = [change.node.path]
    if element is None or change.node.kind not in ("container", "list"):
        return paths
    stack = [(element, change.node)]
    while stack:
        el, node = stack.pop()
        for child in el:
            if not isinstance(child.tag, str):
                continue
            q = etree.QName(child)
            sub = node.child(q.namespace or "", q.localname)
            if sub is not None:
                paths.append(sub.path)
                stack.append((child, sub))
    return paths


def _grants_li(change: Change) -> bool:
    """Granting (or revoking) a lawful-intercept bit in a login class needs flow-tap-control."""
    for element in (change.old, change.new):
        if element is None:
            continue
        if change.node.path == CLASS_PERMISSIONS:
            if (element.text or "").strip() in LI_FLAGS:
                return True
        elif CLASS_PERMISSIONS.startswith(change.node.path + "/"):
            for el in element.iter("{urn:flowtap:yang:system}permissions"):
                if (el.text or "").strip() in LI_FLAGS:
                    return True
    return False
