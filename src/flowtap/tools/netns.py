"""A throw-away routed topology in network namespaces, for tests, bench and demos (needs root).

::

     snd  snd0 198.18.1.2 ── rin  198.18.1.1 ┐
                                             │ rtr: forwarding on, rp_filter off,
     rcv  rcv0 198.18.2.2 ── rout 198.18.2.1 ┤ the tap runs here
                                             │
     med  med0 198.18.3.2 ── rmed 198.18.3.1 ┘ (content destination)

IPv6 uses 2001:db8:N::/64 with the same host numbers. MAC addresses are fixed and every
neighbour entry is static, so the first packets are never queued behind ARP/ND. ``rcv`` also
owns 198.19.0.0/16 and 2001:db8:19::/48 (local routes) so flows can use many destinations.
Deleting the namespaces removes every veth with them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

ROLES = ("snd", "rtr", "rcv", "med")
# (role, ifname, router ifname, subnet index)
LINKS = (("snd", "snd0", "rin", 1), ("rcv", "rcv0", "rout", 2), ("med", "med0", "rmed", 3))


def _mac(subnet: int, host: int) -> str:
    return f"02:fd:00:00:{subnet:02x}:{host:02x}"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


@dataclass
class Topology:
    """Names and addresses of one topology instance (prefix makes the namespaces unique)."""

    prefix: str
    inet6: bool = True
    mtu: int = 1500
    created: list[str] = field(default_factory=list)

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    @staticmethod
    def v4(subnet: int, host: int) -> str:
        return f"198.18.{subnet}.{host}"

    @staticmethod
    def v6(subnet: int, host: int) -> str:
        return f"2001:db8:{subnet}::{host}"

    @staticmethod
    def mac(subnet: int, host: int) -> str:
        return _mac(subnet, host)

    def ip(self, role: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "-n", self.ns(role), *args, check=check)

    def sysctl(self, role: str, key: str, value: str) -> None:
        run("ip", "netns", "exec", self.ns(role), "sysctl", "-qw", f"{key}={value}")

    def up(self) -> Topology:
        """Create everything; on failure whatever was created is removed again."""
        try:
            self._up()
        except BaseException:
            self.down()
            raise
        return self

    def _up(self) -> None:
        for role in ROLES:
            run("ip", "netns", "add", self.ns(role))
            self.created.append(self.ns(role))
            self.ip(role, "link", "set", "lo", "up")
            if self.inet6:
                self.sysctl(role, "net.ipv6.conf.all.accept_dad", "0")
                self.sysctl(role, "net.ipv6.conf.default.accept_dad", "0")
            else:
                self.sysctl(role, "net.ipv6.conf.all.disable_ipv6", "1")
        for k in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
            self.sysctl("rtr", k, "1")
        for k in ("all", "default"):
            self.sysctl("rtr", f"net.ipv4.conf.{k}.rp_filter", "0")
        for role, end, rtr_end, n in LINKS:
            run("ip", "link", "add", end, "netns", self.ns(role), "address", _mac(n, 2),
                "mtu", str(self.mtu), "type", "veth", "peer", "name", rtr_end,
                "netns", self.ns("rtr"), "address", _mac(n, 1), "mtu", str(self.mtu))
            for ns_role, dev, host, peer in ((role, end, 2, 1), ("rtr", rtr_end, 1, 2)):
                self.ip(ns_role, "addr", "add", f"{self.v4(n, host)}/24", "dev", dev)
                self.ip(ns_role, "neigh", "replace", self.v4(n, peer), "lladdr", _mac(n, peer),
                        "dev", dev, "nud", "permanent")
                if self.inet6:
                    self.ip(ns_role, "addr", "add", f"{self.v6(n, host)}/64", "dev", dev,
                            "nodad")
                    self.ip(ns_role, "neigh", "replace", self.v6(n, peer), "lladdr",
                            _mac(n, peer), "dev", dev, "nud", "permanent")
                self.ip(ns_role, "link", "set", dev, "up")
            self.ip(role, "route", "add", "default", "via", self.v4(n, 1))
            if self.inet6:
                self.ip(role, "-6", "route", "add", "default", "via", self.v6(n, 1))
        self.ip("rcv", "route", "add", "local", "198.19.0.0/16", "dev", "lo")
        self.ip("rtr", "route", "add", "198.19.0.0/16", "via", self.v4(2, 2))
        if self.inet6:
            self.ip("rcv", "-6", "route", "add", "local", "2001:db8:19::/48", "dev", "lo")
            self.ip("rtr", "-6", "route", "add", "2001:db8:19::/48", "via", self.v6(2, 2))

    def down(self) -> None:
        """Delete the namespaces (and with them every veth); idempotent."""
        for name in self.created:
            run("ip", "netns", "del", name, check=False)
        self.created.clear()

    def link_stats(self, role: str, dev: str) -> dict[str, int]:
        """rx/tx packet and drop counters of an interface (``ip -s``)."""
        out = json.loads(self.ip(role, "-j", "-s", "link", "show", "dev", dev).stdout)[0]
        rx, tx = out["stats64"]["rx"], out["stats64"]["tx"]
        return {"rx_packets": rx["packets"], "rx_dropped": rx["dropped"],
                "tx_packets": tx["packets"], "tx_dropped": tx["dropped"]}


def unique_prefix(base: str = "ftdp") -> str:
    return f"{base}{os.getpid() % 100000}"


@contextmanager
def topology(prefix: str | None = None, *, inet6: bool = True,
             mtu: int = 1500) -> Iterator[Topology]:
    """``with topology() as t:`` builds it and always tears it down."""
    topo = Topology(prefix or unique_prefix(), inet6=inet6, mtu=mtu)
    topo.up()
    try:
        yield topo
    finally:
        topo.down()


def main(argv: list[str] | None = None) -> int:
    """``python -m flowtap.tools.netns up|down [PREFIX]`` (dataplane/netns.sh calls this)."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ("up", "down"):
        print("usage: python -m flowtap.tools.netns up|down [PREFIX]", file=sys.stderr)
        return 2
    topo = Topology(args[1] if len(args) > 1 else "ftdp")
    if args[0] == "up":
        topo.up()
        print(" ".join(topo.ns(r) for r in ROLES))
    else:
        topo.created = [topo.ns(r) for r in ROLES]
        topo.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
