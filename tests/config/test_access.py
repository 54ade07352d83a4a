"""Login-class authorization of configuration reads and writes (config/access.py): which
permission bits read or write each hierarchy, and how the lawful-intercept subtrees stay hidden
(LI-1), against the real schema."""

from __future__ import annotations

import pytest
from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config import access
from flowtap.config.diff import Change, changes
from flowtap.config.permissions import expand
from flowtap.config.schema import Schema
from flowtap.errors import ConfigError

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:flowtap:yang:system"
IFS = "urn:flowtap:yang:interfaces"
SVC = "urn:flowtap:yang:services"


def principal(*flags: str) -> Principal:
    return Principal("u", "u", "c", expand(flags), "password")


VIEWER = principal("view")
OPS = principal("view", "configure")
SUPER = principal("all")  # all never implies the LI bits
LI_ADMIN = principal("all", "flow-tap-control")
FT_CTL = principal("view", "configure", "flow-tap-control")
FT_READ = principal("view", "flow-tap")

FLOW_TAP = "/ftsvc:services/ftsvc:flow-tap"
DTCP = "/fts:system/fts:services/fts:flow-tap-dtcp"
PASSWORD = "/fts:system/fts:login/fts:user/fts:authentication/fts:encrypted-password"


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema()


@pytest.fixture(scope="module")
def read_filter(schema: Schema) -> access.ReadFilter:
    return access.ReadFilter(schema)


def tree(inner: str) -> etree._Element:
    return etree.fromstring(f'<data xmlns="{NC}">{inner}</data>')


RUNNING = tree(
    f'<system xmlns="{SYS}"><host-name>r1</host-name>'
    "<login><class><name>ops</name><permissions>view</permissions></class>"
    "<user><name>bob</name><class>ops</class><authentication>"
    "<encrypted-password>$6$x$hash</encrypted-password></authentication></user></login>"
    "<radius-server><name>192.0.2.1</name><secret>radius-secret</secret></radius-server>"
    "<services><flow-tap-dtcp><ssh><connection-limit>7</connection-limit></ssh></flow-tap-dtcp>"
    "</services></system>"
    f'<interfaces xmlns="{IFS}"><interface><name>sp-0/0/0</name></interface></interfaces>'
    f'<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0</interface></flow-tap>'
    "</services>"
)


def test_the_longest_matching_rule_wins() -> None:
    password = access.rule_for(PASSWORD)
    assert password is not None and password.read == frozenset({"secret"})
    login = access.rule_for("/fts:system/fts:login/fts:user/fts:class")
    assert login is not None and login.schema_path == "/fts:system/fts:login"
    flow_tap = access.rule_for(FLOW_TAP + "/ftsvc:interface")
    assert flow_tap is not None and flow_tap.write == frozenset({"flow-tap-control"})
    services = access.rule_for("/ftsvc:services/ftsvc:dynamic-flow-capture")
    assert services is not None and services.schema_path == "/ftsvc:services"
    # a prefix of a name is not a parent: flow-tap-state is its own rule, not flow-tap's
    state = access.rule_for("/ftsvc:flow-tap-state/ftsvc:criteria")
    assert state is not None and state.schema_path == "/ftsvc:flow-tap-state"
    assert access.rule_for("/fts:authorization") is None


@pytest.mark.parametrize(
    ("who", "path", "readable"),
    [
        (VIEWER, "/fts:system/fts:host-name", True),
        (VIEWER, "/fti:interfaces/fti:interface", True),
        (VIEWER, "/ftsvc:services/ftsvc:dynamic-flow-capture", True),
        (VIEWER, "/fts:system/fts:login", False),  # needs admin
        (VIEWER, "/fts:system/fts:radius-server/fts:secret", False),  # needs secret
        (VIEWER, FLOW_TAP, False),
        (VIEWER, DTCP, False),
        (VIEWER, "/ftsvc:flow-tap-state", False),
        (VIEWER, "/fts:authorization", True),  # no rule: everyone
        (principal("system"), "/fts:system/fts:host-name", True),
        (principal("interface"), "/fts:system/fts:host-name", False),
        (SUPER, "/fts:system/fts:login", True),
        (SUPER, PASSWORD, True),
        (SUPER, FLOW_TAP, False),  # all is not flow-tap
        (SUPER, DTCP, False),
        (FT_READ, FLOW_TAP, True),
        (FT_READ, DTCP, True),
        (FT_CTL, FLOW_TAP, True),  # flow-tap-control implies flow-tap
        (principal("flow-tap-operation"), FLOW_TAP, False),  # a mediation device's bit
        (principal("flow-tap-operation"), "/ftsvc:flow-tap-state", False),
    ],
)
def test_may_read(who: Principal, path: str, readable: bool) -> None:
    assert access.may_read(who, path) is readable


def names(pruned: etree._Element) -> set[str]:
    return {etree.QName(el).localname for el in pruned.iter() if isinstance(el.tag, str)}


def test_a_principal_who_sees_everything_gets_the_tree_itself(
    read_filter: access.ReadFilter,
) -> None:
    assert read_filter.sees_everything(LI_ADMIN)
    assert read_filter.prune(RUNNING, LI_ADMIN) is RUNNING
    assert not read_filter.sees_everything(SUPER)


def test_hidden_subtrees_are_pruned_from_a_copy(read_filter: access.ReadFilter) -> None:
    before = etree.tostring(RUNNING)
    pruned = read_filter.prune(RUNNING, VIEWER)
    assert etree.tostring(RUNNING) == before
    seen = names(pruned)
    assert {"host-name", "radius-server", "interfaces", "interface"} <= seen
    assert not seen & {"login", "secret", "flow-tap", "flow-tap-dtcp", "connection-limit"}
    # containers left empty by the pruning are gone: an empty one would show hidden data exists
    assert "services" not in seen
    assert b"sp-0/0/0.0" not in etree.tostring(pruned)


def test_super_user_sees_secrets_but_no_lawful_intercept(read_filter: access.ReadFilter) -> None:
    pruned = read_filter.prune(RUNNING, SUPER)
    seen = names(pruned)
    assert {"login", "encrypted-password", "secret"} <= seen
    assert not seen & {"flow-tap", "flow-tap-dtcp", "services"}


def test_an_li_reader_sees_flow_tap_but_not_the_login(read_filter: access.ReadFilter) -> None:
    seen = names(read_filter.prune(RUNNING, FT_READ))
    assert {"flow-tap", "flow-tap-dtcp", "connection-limit"} <= seen
    assert not seen & {"login", "secret"}


def test_pruning_keeps_what_remains_of_a_container(read_filter: access.ReadFilter) -> None:
    running = tree(f'<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0</interface>'
                   "</flow-tap><dynamic-flow-capture/></services>")  # fmt: skip
    assert names(read_filter.prune(running, VIEWER)) == {
        "data", "services", "dynamic-flow-capture"}  # fmt: skip


def diff(schema: Schema, old: str, new: str) -> list[Change]:
    return changes(schema, tree(old), tree(new))


def denied(who: Principal, found: list[Change]) -> bool:
    try:
        access.check_write(who, found)
    except ConfigError as err:
        assert err.tag == "access-denied" and err.type == "application"
        assert err.path is None and err.info == {}  # names no path, no value
        return True
    return False


def host(name: str) -> str:
    return f'<system xmlns="{SYS}"><host-name>{name}</host-name></system>'


def test_no_change_is_never_denied(schema: Schema) -> None:
    assert not denied(VIEWER, [])
    assert not denied(VIEWER, diff(schema, host("r1"), host("r1")))


@pytest.mark.parametrize(
    ("who", "allowed"),
    [(VIEWER, False), (OPS, False), (principal("configure", "system-control"), True),
     (principal("system-control"), False), (SUPER, True)],
)  # fmt: skip
def test_writing_system_needs_configure_and_system_control(
    schema: Schema, who: Principal, allowed: bool
) -> None:
    assert denied(who, diff(schema, host("r1"), host("r2"))) is not allowed


def test_writing_each_hierarchy_needs_its_control_bit(schema: Schema) -> None:
    dfc = diff(schema, "", f'<services xmlns="{SVC}"><dynamic-flow-capture/></services>')
    assert not denied(OPS, dfc)  # services themselves: configure
    interface = diff(schema, "", f'<interfaces xmlns="{IFS}"><interface><name>ge-0/0/0</name>'
                     "</interface></interfaces>")  # fmt: skip
    assert denied(OPS, interface)
    assert not denied(principal("configure", "interface-control"), interface)
    login = diff(schema, host("r1"), f'<system xmlns="{SYS}"><host-name>r1</host-name><login>'
                 "<user><name>x</name><class>ops</class></user></login></system>")  # fmt: skip
    assert denied(principal("configure", "system-control"), login)  # needs admin-control
    assert not denied(principal("configure", "admin-control"), login)


def test_a_created_subtree_needs_the_bits_of_everything_inside(schema: Schema) -> None:
    """A new <system> holding a login and a host name touches both rules."""
    whole = diff(schema, "", f'<system xmlns="{SYS}"><host-name>r1</host-name><login><user>'
                 "<name>x</name><class>ops</class></user></login></system>")  # fmt: skip
    assert denied(principal("configure", "system-control"), whole)
    assert denied(principal("configure", "admin-control"), whole)
    assert not denied(principal("configure", "system-control", "admin-control"), whole)


def test_lawful_intercept_configuration_needs_flow_tap_control(schema: Schema) -> None:
    flow_tap = diff(schema, "", f'<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0'
                    "</interface></flow-tap></services>")  # fmt: skip
    netconf = "<netconf><ssh/></netconf>"
    dtcp = diff(schema, f'<system xmlns="{SYS}"><services>{netconf}</services></system>',
                f'<system xmlns="{SYS}"><services>{netconf}<flow-tap-dtcp><ssh/></flow-tap-dtcp>'
                "</services></system>")  # fmt: skip
    for change in (flow_tap, dtcp):
        assert denied(SUPER, change)
        assert denied(principal("flow-tap-control"), change)  # and configure
        assert not denied(FT_CTL, change)
        assert not denied(LI_ADMIN, change)


def test_granting_an_li_bit_in_a_login_class_needs_flow_tap_control(schema: Schema) -> None:
    other = "<class><name>d</name><permissions>view</permissions></class>"

    def login(*perms: str, name: str = "c") -> str:
        flags = "".join(f"<permissions>{p}</permissions>" for p in perms)
        return (f'<system xmlns="{SYS}"><login>{other}<class><name>{name}</name>{flags}</class>'
                "</login></system>")  # fmt: skip

    admin = principal("configure", "admin-control")
    assert not denied(admin, diff(schema, login("view"), login("view", "configure")))
    assert not denied(admin, diff(schema, login("view"), login("view", name="e")))
    for flag in ("flow-tap", "flow-tap-control", "flow-tap-operation"):
        assert denied(admin, diff(schema, login("view"), login("view", flag)))  # granting
        assert denied(admin, diff(schema, login("view", flag), login("view")))  # revoking
        assert denied(admin, diff(schema, login("view"), login(flag, name="e")))  # a new class
        assert not denied(principal("configure", "admin-control", "flow-tap-control"),
                          diff(schema, login("view"), login("view", flag)))  # fmt: skip


def test_writes_everything_and_conceals_anything() -> None:
    assert access.writes_everything(LI_ADMIN)
    assert not access.writes_everything(SUPER)  # no flow-tap-control
    assert not access.writes_everything(FT_CTL)
    assert access.conceals_anything(SUPER) and access.conceals_anything(VIEWER)
    assert not access.conceals_anything(LI_ADMIN)
    # FT_CTL may learn the LI configuration (it writes it), but the login stays concealed
    assert access.conceals_anything(FT_CTL)
    assert not access.conceals_anything(principal("view", "configure", "flow-tap-control",
                                                  "admin-control", "secret", "system-control"))


def edit_config(inner: str) -> etree._Element:
    return etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}">{inner}</config>')


def refused_before_applying(schema: Schema, who: Principal, inner: str,
                            default_operation: str = "merge") -> bool:  # fmt: skip
    try:
        spots = access.edit_spots(schema, edit_config(inner), default_operation)
        access.check_edit_request(who, spots)
    except ConfigError as err:
        assert err.tag == "access-denied" and err.path is None
        return True
    return False


def test_an_edit_naming_concealed_data_is_refused_before_it_is_applied(schema: Schema) -> None:
    create = f'<services xmlns="{SVC}"><flow-tap nc:operation="create"/></services>'
    delete = (f'<system xmlns="{SYS}"><services><flow-tap-dtcp nc:operation="delete"/>'
              "</services></system>")  # fmt: skip
    for inner in (create, delete):
        assert refused_before_applying(schema, SUPER, inner)
        assert refused_before_applying(schema, OPS, inner)
        assert not refused_before_applying(schema, LI_ADMIN, inner)
    # removing or replacing an ancestor of concealed data would reveal whether it exists
    services = f'<services xmlns="{SVC}" nc:operation="remove"/>'
    assert refused_before_applying(schema, OPS, services)
    replace_system = f'<system xmlns="{SYS}" nc:operation="replace"><host-name>r</host-name></system>'
    assert refused_before_applying(schema, SUPER, replace_system)
    assert refused_before_applying(schema, SUPER, host("r"), default_operation="replace")
    assert not refused_before_applying(schema, LI_ADMIN, host("r"), default_operation="replace")


def test_an_edit_beside_concealed_data_is_left_to_the_engine(schema: Schema) -> None:
    assert not refused_before_applying(schema, OPS, host("r"))
    assert not refused_before_applying(
        schema, OPS, f'<services xmlns="{SVC}"><dynamic-flow-capture/></services>')
    assert not refused_before_applying(schema, OPS, f'<nonsense xmlns="{SYS}"/>')  # unknown
    # the login (secrets included) is concealed from a class without admin or admin-control
    password = (f'<system xmlns="{SYS}"><login><user><name>bob</name><authentication>'
                "<encrypted-password>$6$x$y</encrypted-password></authentication></user></login>"
                "</system>")  # fmt: skip
    assert refused_before_applying(schema, OPS, password)
    admin = principal("view", "configure", "admin-control")
    assert not refused_before_applying(schema, admin, password)


@pytest.mark.parametrize(
    ("who", "new", "says"),
    [
        (principal("view", "admin", "configure"), "login",
         "changing system login needs the admin-control permission"),
        (OPS, "interfaces", "changing interfaces needs the interface-control permission"),
        (VIEWER, "interfaces", "the login class lacks the configure permission"),
        (OPS, "flow-tap", "the login class lacks the permission for this change"),
        (FT_READ, "flow-tap", "the login class lacks the configure permission"),
        (principal("view", "configure", "flow-tap"), "flow-tap",
         "the login class lacks the permission for this change"),
        (principal("admin", "configure"), "password",
         "the login class lacks the permission for this change"),
    ],
    ids=["login", "interfaces", "no-configure", "li-hidden", "li-no-configure", "li-readable",
         "secret-unreadable"],
)
def test_a_refusal_names_the_missing_permission_only_where_that_leaks_nothing(
    schema: Schema, who: Principal, new: str, says: str
) -> None:
    """Issue 17 item 7: what to ask the administrator for, but never about LI hierarchies or
    hierarchies the user cannot read."""
    text = etree.tostring(RUNNING).decode()
    edited = {
        "login": text.replace("<permissions>view</permissions>",
                              "<permissions>configure</permissions>"),
        "interfaces": text.replace("<name>sp-0/0/0</name>", "<name>sp-0/0/1</name>"),
        "flow-tap": text.replace("sp-0/0/0.0", "sp-0/0/1.0"),
        "password": text.replace("$6$x$hash", "$6$y$hash"),
    }[new]  # fmt: skip
    with pytest.raises(ConfigError) as refused:
        access.check_write(who, changes(schema, RUNNING, etree.fromstring(edited)))
    assert refused.value.tag == "access-denied"
    assert refused.value.message == f"Access denied: {says}"
