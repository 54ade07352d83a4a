"""What a reader may see of a datastore, serialized once per datastore tree and set of hidden
rules (Datastores.visible): the same bytes the pruning gave, a fresh answer after every edit and
commit, and never the data of one class served to another from the cache."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config.datastores import Datastores
from flowtap.config.permissions import expand
from flowtap.config.persist import StateDir
from flowtap.config.schema import Schema
from flowtap.config.txn import TransactionManager

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:flowtap:yang:system"
IFS = "urn:flowtap:yang:interfaces"
SVC = "urn:flowtap:yang:services"


def principal(name: str, *flags: str) -> Principal:
    return Principal(name, name, "c", expand(flags), "password")


LI_ADMIN = principal("li", "all", "flow-tap-control")
SUPER = principal("su", "all")
OTHER_SUPER = principal("su2", "all")  # another user of the same permissions
VIEWER = principal("viewer", "view")
FT_READ = principal("ftread", "view", "flow-tap")
SCHEMA = Schema()

BOOT = (
    f'<system xmlns="{SYS}"><host-name>boot</host-name>'
    "<login><class><name>ops</name><permissions>view</permissions></class>"
    "<user><name>bob</name><class>ops</class><authentication>"
    "<encrypted-password>$6$x$hash</encrypted-password></authentication></user></login>"
    "<services><flow-tap-dtcp><ssh><connection-limit>7</connection-limit></ssh></flow-tap-dtcp>"
    "</services></system>"
    f'<interfaces xmlns="{IFS}"><interface><name>sp-0/0/0</name><host-device>lo</host-device>'
    "<unit><name>0</name><family><inet/></family></unit></interface></interfaces>"
    f'<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0</interface></flow-tap></services>'
)


async def datastores(tmp_path: Path) -> Datastores:
    txn = TransactionManager(SCHEMA, StateDir(tmp_path))
    await txn.boot(BOOT.encode(), persist=True)
    return Datastores(txn)


def edit(inner: str) -> etree._Element:
    return etree.fromstring(f'<config xmlns="{NC}">{inner}</config>')


def host(name: str) -> etree._Element:
    return edit(f'<system xmlns="{SYS}"><host-name>{name}</host-name></system>')


def flow_tap(interface: str) -> etree._Element:
    return edit(f'<services xmlns="{SVC}"><flow-tap><interface>{interface}</interface>'
                "</flow-tap></services>")  # fmt: skip


def pruned_as_before(ds: Datastores, name: str, who: Principal) -> bytes:
    """What get-config answered before the cache: the pruned tree's children serialized."""
    tree = ds.read_filter.prune(ds.tree(name), who)
    return b"".join(etree.tostring(child) for child in tree)


async def test_the_cached_bytes_are_what_pruning_gives(tmp_path: Path) -> None:
    ds = await datastores(tmp_path)
    ds.edit("candidate", host("edited"), LI_ADMIN, 1)
    for who in (LI_ADMIN, SUPER, VIEWER, FT_READ):
        for name in ("running", "candidate"):
            assert ds.visible(name, who) == pruned_as_before(ds, name, who), (who.user, name)


async def test_each_set_of_permissions_sees_its_own_data(tmp_path: Path) -> None:
    ds = await datastores(tmp_path)
    li, su, viewer, ft = (ds.visible("running", w) for w in (LI_ADMIN, SUPER, VIEWER, FT_READ))
    assert b"sp-0/0/0.0" in li and b"flow-tap-dtcp" in li and b"encrypted-password" in li
    assert b"flow-tap" not in su and b"encrypted-password" in su and b"<login>" in su
    assert b"flow-tap" not in viewer and b"<login>" not in viewer and b"boot" in viewer
    assert b"sp-0/0/0.0" in ft and b"<login>" not in ft
    assert len({li, su, viewer, ft}) == 4
    # the same hidden rules share one serialization
    assert ds.visible("running", OTHER_SUPER) is su


async def test_a_cache_warmed_by_an_li_reader_never_serves_li_data_to_others(
    tmp_path: Path,
) -> None:
    ds = await datastores(tmp_path)
    for name in ("running", "candidate"):
        assert b"flow-tap" in ds.visible(name, LI_ADMIN)
        assert b"flow-tap" in ds.visible(name, FT_READ)
        assert b"flow-tap" not in ds.visible(name, SUPER)
        assert b"flow-tap" not in ds.visible(name, VIEWER)
        # and the other way round: a warm non-LI entry does not hide LI data from the LI admin
        assert b"sp-0/0/0.0" in ds.visible(name, LI_ADMIN)


async def test_commits_and_edits_invalidate_what_was_cached(tmp_path: Path) -> None:
    ds = await datastores(tmp_path)
    before = ds.visible("running", SUPER)
    assert b"boot" in before and b"boot" in ds.visible("candidate", SUPER)
    ds.edit("candidate", host("edited"), SUPER, 1)
    assert b"edited" in ds.visible("candidate", SUPER)
    assert ds.visible("running", SUPER) is before  # running did not change
    await ds.commit(SUPER, 1)
    after = ds.visible("running", SUPER)
    assert b"edited" in after and b"boot" not in after
    ds.edit("candidate", flow_tap("sp-0/0/0.1"), LI_ADMIN, 2)
    await ds.commit(LI_ADMIN, 2)
    assert b"sp-0/0/0.1" in ds.visible("running", LI_ADMIN)
    assert b"sp-0/0/0.1" not in ds.visible("running", SUPER)
    assert ds.visible("running", SUPER) == after  # an LI change is invisible to the super-user


async def test_a_reader_without_hidden_rules_gets_the_stored_serialization(
    tmp_path: Path,
) -> None:
    ds = await datastores(tmp_path)
    assert ds.visible("running", LI_ADMIN) is ds.txn.running_bytes
