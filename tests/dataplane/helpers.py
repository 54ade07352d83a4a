"""Shared helpers for the dataplane tests."""

from __future__ import annotations

import ipaddress

from flowtap.config import model
from flowtap.intercept.criteria import (
    AddressFilter,
    ContentDestination,
    Criterion,
    Match,
    Span,
    ValueFilter,
)


def ip(text: str) -> int:
    return int(ipaddress.ip_address(text))


def addr(*entries: str) -> AddressFilter:
    """DTCP IPFilter forms: host, prefix, a-b, a-*, *-b, !entry."""
    spans = []
    version = None
    for entry in entries:
        neg = entry.startswith("!")
        e = entry.lstrip("!")
        if "/" in e:
            net = ipaddress.ip_network(e, strict=False)
            version, lo, hi = net.version, int(net.network_address), int(net.broadcast_address)
        elif "-" in e:
            a, b = e.split("-")
            ref = ipaddress.ip_address(a if a != "*" else b)
            version = ref.version
            top = (1 << (32 if version == 4 else 128)) - 1
            lo = 0 if a == "*" else ip(a)
            hi = top if b == "*" else ip(b)
        else:
            version, lo = ipaddress.ip_address(e).version, ip(e)
            hi = lo
        spans.append(Span(lo, hi, neg))
    return AddressFilter(version, tuple(spans))


def vals(*entries: str) -> ValueFilter:
    """PortFilter/ProtFilter forms: n, n-m, n-*, *-m, !entry."""
    spans = []
    for entry in entries:
        neg = entry.startswith("!")
        e = entry.lstrip("!")
        if "-" in e:
            a, b = e.split("-")
            spans.append(Span(0 if a == "*" else int(a), 65535 if b == "*" else int(b), neg))
        else:
            spans.append(Span(int(e), int(e), neg))
    return ValueFilter(tuple(spans))


CD4 = ContentDestination("cd1", "198.18.3.2", 47000, "198.18.99.1", 5555, 64)


def crit(cid: int, match: Match, *dests: ContentDestination, **kw: object) -> Criterion:
    return Criterion(cid, "md1", match, dests or (CD4,), **kw)  # type: ignore[arg-type]


def cfg_model(*, flow_tap: bool = True, inet6: bool = False, rout: bool = True,
              service: str = "sp-0/0/0.0") -> model.Config:
    """A flow-tap configuration on the hook tests' topology (devices lo, rin, rout)."""
    ifaces = {
        "sp-0/0/0": model.Interface("sp-0/0/0", "lo",
                                    units={0: model.Unit(0, inet=True, inet6=inet6)}),
        "sp-1/0/0": model.Interface("sp-1/0/0", "lo", units={0: model.Unit(0, inet=True)}),
        "ge-0/0/0": model.Interface("ge-0/0/0", "rin", units={0: model.Unit(0, inet=True)}),
        "ge-0/0/1": model.Interface("ge-0/0/1", "rout", disabled=not rout,
                                    units={0: model.Unit(0, inet=True)}),
    }
    ft = model.FlowTapService(interface=service) if flow_tap else None
    return model.Config(interfaces=ifaces, flow_tap=ft)
