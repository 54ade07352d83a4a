"""The capture plan a flow-tap configuration gives (moved from the flow-tap hook's integration
tests: plan() is pure, config in, plan out, and needs no namespace or daemon)."""

from __future__ import annotations

import pytest

from flowtap.config import model
from flowtap.dataplane.service import check, plan
from flowtap.errors import CommitFailed
from tests.dataplane.helpers import cfg_model


def test_plan_is_pure_and_documents_the_choices():
    assert plan(model.Config()) is None
    p = plan(cfg_model(inet6=True))
    assert p is not None and p.service == "sp-0/0/0.0" and not p.lite and p.inet6
    # services PIC (sp-1/0/0 too, a spare) and tunnel interfaces are never captured
    assert [(c.name, c.device) for c in p.interfaces] == [
        ("ge-0/0/0.0", "rin"), ("ge-0/0/1.0", "rout")]
    # FlowTapLite: same dataplane, the vt- unit (when configured) gives the families
    ifaces = {**cfg_model().interfaces,
              "vt-0/0/0": model.Interface("vt-0/0/0", "lo",
                                          units={5: model.Unit(5, inet=True, inet6=True)})}
    lite = plan(model.Config(interfaces=ifaces,
                             flow_tap=model.FlowTapService(tunnel_interface="vt-0/0/0.5")))
    assert lite is not None and lite.lite and lite.inet6
    assert [c.name for c in lite.interfaces] == ["ge-0/0/0.0", "ge-0/0/1.0"]
    bare = plan(model.Config(flow_tap=model.FlowTapService(tunnel_interface="vt-0/0/0.0")))
    assert bare is not None and bare.interfaces == () and not bare.inet6
    # the IFL name is the lowest configured unit
    odd = {"xe-1/0/0": model.Interface("xe-1/0/0", "eth9", units={7: model.Unit(7),
                                                                  3: model.Unit(3)})}
    p = plan(model.Config(interfaces=odd, flow_tap=model.FlowTapService(
        tunnel_interface="vt-0/0/0.0")))
    assert p is not None and p.interfaces[0].name == "xe-1/0/0.3"
    dup = {**cfg_model().interfaces, "ge-0/0/5": model.Interface("ge-0/0/5", "rin")}
    with pytest.raises(CommitFailed, match="ge-0/0/5"):
        check(model.Config(interfaces=dup, flow_tap=model.FlowTapService("sp-0/0/0.0")))
    check(model.Config(interfaces=dup))  # without flow-tap nothing is captured
