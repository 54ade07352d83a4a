"""Bounded filters (issue 13 item 1): the linear XPath subset, the worker pool with its deadline,
and the subtree filter's work budget. Results must equal the in-process ones exactly."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from lxml import etree

from flowtap.errors import NetconfRpcError
from flowtap.netconf.filters import subtree_filter, xpath_filter, xpath_filter_bounded
from flowtap.netconf.xmlparse import NC_NS
from flowtap.netconf.xpath import prepare
from flowtap.netconf.xpath_pool import XPathPool
from tests.netconf.test_filters import CFG, NS, XPATH_CASES, data, norm, parse, subtree, user_keys

HOSTILE = "//*[count(//*[count(//*[count(//*)>0])>0])>0]"  # issue 13 row 1: O(N^4)


@pytest.fixture
async def pool() -> AsyncIterator[XPathPool]:
    workers = XPathPool()
    yield workers
    await workers.close()


def many_users(count: int) -> etree._Element:
    entries = "".join(f"<user><name>u{i}</name><type>admin</type></user>" for i in range(count))
    return parse(f'<data xmlns="{NC_NS}"><top xmlns="{CFG}"><users>{entries}</users></top></data>')


@pytest.mark.parametrize(
    "select",
    [
        "/system/services",
        "/c:top/c:users/c:user[c:name='fred']",
        "c:top/c:users/c:user[c:name='fred' and c:type != 'x'][1]",
        "/c:top/c:users/c:user[c:company-info/c:id > 1]/c:name",
        "/s:top/s:interfaces/s:interface[@s:ifName='eth0']",
        "/c:top/c:users/c:user[. = 'x']",
    ],
)
def test_linear_expressions_run_in_process(select: str) -> None:
    assert prepare(select, NS).linear


@pytest.mark.parametrize(
    "select",
    [
        HOSTILE,
        "//c:user",
        "/c:top//c:name",
        "/c:top/c:users/c:user[c:name = c:type]",  # node-set = node-set: every pair
        "/c:top/c:users/c:user[count(c:name)]",
        "/c:top | /o:hostname",
        "/c:top/..",
        "/c:top/c:users/c:user[c:name = /o:top/o:users/o:user/c:name]",
        "/*/*/*/*/*/*/*/*/*/*/*/*/*",
        "/o:hostname/text()",
        "/c:top/ancestor::*",
    ],
)
def test_other_expressions_go_to_a_worker(select: str) -> None:
    assert not prepare(select, NS).linear


async def test_worker_results_equal_in_process_results(pool: XPathPool) -> None:
    selects = [case[1] for case in XPATH_CASES] + ["/", ".", "/ | /c:top", "/*/..", "//*"]
    for select in selects:
        for keys in (None, user_keys):
            want = norm(xpath_filter(data(), select, NS, keys))
            got = await xpath_filter_bounded(pool, data(), select, NS, keys)
            assert norm(got) == want, select


async def test_worker_on_a_wrapper_that_is_not_the_document_root(pool: XPathPool) -> None:
    outer = parse(f'<envelope><x xmlns="{CFG}"/>{etree.tostring(data()).decode()}</envelope>')
    select = "/c:top/c:users/c:user[c:name='fred'] | //c:x | /.."
    want = norm(xpath_filter(outer[1], select, NS))
    assert norm(await xpath_filter_bounded(pool, outer[1], select, NS)) == want


@pytest.mark.parametrize("select", ["count(//c:user)", "/c:top[", "$nope", "//x:top"])
async def test_worker_reports_invalid_expressions_as_invalid_value(
    pool: XPathPool, select: str
) -> None:
    with pytest.raises(NetconfRpcError) as err:
        await xpath_filter_bounded(pool, data(), select, NS)
    assert err.value.tag == "invalid-value"


async def test_hostile_expression_fails_at_the_deadline_and_the_pool_recovers(
    pool: XPathPool,
) -> None:
    big = many_users(300)  # ~900 nodes: O(N^4) is hours
    started = time.monotonic()
    with pytest.raises(NetconfRpcError) as err:
        await xpath_filter_bounded(pool, big, HOSTILE, NS)
    assert err.value.tag == "operation-failed"
    assert time.monotonic() - started < 10 * pool.deadline  # killed, not waited for
    got = await xpath_filter_bounded(pool, big, "//c:user[c:name='u7']/c:type", NS)
    assert [e.text for e in got.iter(f"{{{CFG}}}type")] == ["admin"]


def test_subtree_filter_over_its_work_budget_is_too_big() -> None:
    big = many_users(1000)
    names = "".join(f"<user><name>u{i}</name></user>" for i in range(50))
    flt = subtree(f'<top xmlns="{CFG}"><users>{names}</users></top>')
    # 50 entries each scan 1000 users and enter each: ~6 M units, within the default budget
    assert len(subtree_filter(big, flt)[0][0]) == 50
    with pytest.raises(NetconfRpcError) as err:
        subtree_filter(big, flt, None, work=1_000_000)
    assert err.value.tag == "too-big"
    repeated = subtree(f'<top xmlns="{CFG}"><users>{"<user><name/></user>" * 5000}</users></top>')
    with pytest.raises(NetconfRpcError) as err:
        subtree_filter(big, repeated)  # 5000 x 1000 entries: far over the default budget
    assert err.value.tag == "too-big"
