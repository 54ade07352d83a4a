"""``services flow-tap limits`` and ``capture-workers`` (issue 15 items 4 and 5): the YANG
validates them, the snapshot carries them, and the defaults agree everywhere they are written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

from flowtap.config import model
from flowtap.config.schema import Schema
from flowtap.errors import ConfigError
from flowtap.intercept.table import RegistryLimits

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SVC = model.NS_SERVICES
YANG = Path(__file__).resolve().parents[2] / "yang" / "flowtap-services.yang"


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema()


def flow_tap(schema: Schema, inner: str) -> model.FlowTapService:
    """The flow-tap section of a configuration whose flow-tap container holds ``inner``,
    validated and printed back as a commit does."""
    payload = (f'<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0</interface>{inner}'
               "</flow-tap></services>")  # fmt: skip
    canonical = schema.canonical(payload.encode(), validate=True)
    tree = etree.fromstring(f'<data xmlns="{NC}">'.encode() + canonical + b"</data>")
    section = model.from_tree(tree).flow_tap
    assert section is not None
    return section


def refusal(schema: Schema, inner: str) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        flow_tap(schema, inner)
    return exc.value


def test_absent_leaves_give_the_defaults(schema: Schema) -> None:
    section = flow_tap(schema, "")
    assert (section.criteria_limit, section.criteria_per_source_limit) == (32768, 16384)
    assert section.capture_workers is None  # one per online CPU, decided by the dataplane


def test_configured_limits_and_workers(schema: Schema) -> None:
    section = flow_tap(schema, "<limits><criteria>100000</criteria>"
                       "<criteria-per-source>100000</criteria-per-source></limits>"
                       "<capture-workers>2</capture-workers>")  # fmt: skip
    assert section == model.FlowTapService(
        interface="sp-0/0/0.0", criteria_limit=100000, criteria_per_source_limit=100000,
        capture_workers=2,
    )  # fmt: skip


def test_one_limit_set_keeps_the_other_default(schema: Schema) -> None:
    section = flow_tap(schema, "<limits><criteria-per-source>3</criteria-per-source></limits>")
    assert (section.criteria_limit, section.criteria_per_source_limit) == (32768, 3)


@pytest.mark.parametrize("inner", [
    "<limits><criteria>0</criteria></limits>",
    "<limits><criteria>1000001</criteria></limits>",
    "<limits><criteria-per-source>0</criteria-per-source></limits>",
    "<capture-workers>0</capture-workers>",
    "<capture-workers>65</capture-workers>",
])  # fmt: skip
def test_out_of_range_is_refused(schema: Schema, inner: str) -> None:
    assert refusal(schema, inner).tag == "invalid-value"


@pytest.mark.parametrize("inner", [
    "<limits><criteria>10</criteria><criteria-per-source>11</criteria-per-source></limits>",
    "<limits><criteria>100</criteria></limits>",  # below the per-source default
    "<limits><criteria-per-source>40000</criteria-per-source></limits>",  # above the default
])  # fmt: skip
def test_per_source_above_the_total_is_refused_with_a_clear_message(
    schema: Schema, inner: str
) -> None:
    error = refusal(schema, inner)
    assert error.message == ("flow-tap limits criteria-per-source (default 16384) must not "
                             "exceed limits criteria (default 32768)")  # fmt: skip
    assert error.path == "/ftsvc:services/ftsvc:flow-tap/ftsvc:limits"


def test_per_source_equal_to_the_total_is_accepted(schema: Schema) -> None:
    section = flow_tap(schema, "<limits><criteria>5</criteria>"
                       "<criteria-per-source>5</criteria-per-source></limits>")  # fmt: skip
    assert (section.criteria_limit, section.criteria_per_source_limit) == (5, 5)


def test_defaults_agree_in_yang_model_and_registry() -> None:
    text = YANG.read_text()

    def yang_default(leaf: str) -> int:
        found = re.search(rf'leaf {leaf} \{{.*?default "(\d+)";', text, re.S)
        assert found, leaf
        return int(found.group(1))

    assert yang_default("criteria") == model.DEFAULT_CRITERIA_LIMIT
    assert yang_default("criteria-per-source") == model.DEFAULT_CRITERIA_PER_SOURCE_LIMIT
    registry = RegistryLimits()
    assert (registry.total, registry.per_source) == (model.DEFAULT_CRITERIA_LIMIT,
                                                     model.DEFAULT_CRITERIA_PER_SOURCE_LIMIT)
