"""The seed's topology in network namespaces: two agencies, their targets, and what can be observed
from outside flowtapd (kernel counters, the capture pre-filter, the collectors' pcaps).

::

     snd   198.18.1.2 ── rin   ┐ rtr: flowtapd (NETCONF 127.0.0.1:830, DTCP on the agency links),
                               │      captures ingress on rin (ge-0/0/0)
     rcv   198.18.2.2 ── rout  ┤ the receiver; also owns 198.19.0.0/16: the subscribers,
                               │ among them the two targets
     med   198.18.3.2 ── rmed  ┤ agency A: mediation device + content destination (collector)
     medb  198.18.4.2 ── rmedb ┘ agency B: mediation device + content destination (collector)

The first four namespaces come from :mod:`flowtap.tools.netns`; ``medb`` is added here the
same way (fixed MACs, static neighbours). IPv6 is off: no neighbour discovery or MLD packet ever
disturbs the kernel counters the demo reads.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from flowtap.dataplane import bpf_syscall
from flowtap.tools.netns import Topology, run, unique_prefix

SENDER = Topology.v4(1, 2)
RECEIVER_DEV = "rcv0"
INGRESS_DEV = "rin"  # the router's ingress device, bound to ge-0/0/0 with host-device
AGENCY_B_SUBNET = 4


@dataclass(frozen=True, slots=True)
class Agency:
    """A law-enforcement agency: its mediation device's user, its content destination, and
    the one target its warrant names."""

    label: str  # "A"
    user: str  # the mediation device's login on the router
    role: str  # namespace role of its network (mediation device and content destination)
    subnet: int  # 198.18.<subnet>.0/24: .1 the router, .2 the agency
    cdest_id: str  # DTCP Cdest-ID
    cd_port: int  # UDP port of its content destination
    target: str  # the target's address (a subscriber behind the receiver)

    @property
    def address(self) -> str:
        """The agency's host: mediation device and content destination."""
        return Topology.v4(self.subnet, 2)

    @property
    def router_address(self) -> str:
        """The router's address on the agency's link (DTCP listener, copies' source)."""
        return Topology.v4(self.subnet, 1)

    @property
    def cd_source_port(self) -> int:
        return self.cd_port + 100

    def add_fields(self, *, intercept_id: str | None = None) -> list[tuple[str, str]]:
        """DTCP ADD fields: every packet to the target, copied to this agency's collector."""
        fields = [
            ("Cdest-ID", self.cdest_id),
            ("Source-Address", "*"),
            ("Dest-Address", self.target),
            ("X-JTap-Cdest-Dest-Address", self.address),
            ("X-JTap-Cdest-Dest-Port", str(self.cd_port)),
            ("X-JTap-Cdest-Source-Address", self.router_address),
            ("X-JTap-Cdest-Source-Port", str(self.cd_source_port)),
        ]
        if intercept_id is not None:
            fields.append(("X-MD-Intercept-Id", intercept_id))
        fields.append(("Flags", "STATIC"))
        return fields

    def delete_fields(self, criteria_id: int) -> list[tuple[str, str]]:
        return [("Criteria-ID", str(criteria_id)), ("Flags", "STATIC")]


AGENCY_A = Agency("A", "md-agency-a", "med", 3, "lea-a", 47001, "198.19.0.10")
AGENCY_B = Agency("B", "md-agency-b", "medb", AGENCY_B_SUBNET, "lea-b", 47002, "198.19.0.20")
BYSTANDER = "198.19.0.30"  # a subscriber nobody has a warrant for


class Lab:
    """The topology plus agency B's namespace; :meth:`down` removes every namespace."""

    def __init__(self, prefix: str | None = None) -> None:
        self.topo = Topology(prefix or unique_prefix("ftlab"), inet6=False)

    def ns(self, role: str) -> str:
        return self.topo.ns(role)

    def up(self) -> Lab:
        try:
            for role in ("snd", "rtr", "rcv", "med", "medb"):
                if Path("/run/netns", self.ns(role)).exists():
                    raise RuntimeError(f"network namespace {self.ns(role)} already exists")
            self.topo.up()
            self._add_agency_b()
        except BaseException:
            self.down()
            raise
        return self

    def _add_agency_b(self) -> None:
        t, n = self.topo, AGENCY_B_SUBNET
        run("ip", "netns", "add", t.ns("medb"))
        t.created.append(t.ns("medb"))
        t.ip("medb", "link", "set", "lo", "up")
        t.sysctl("medb", "net.ipv6.conf.all.disable_ipv6", "1")
        run("ip", "link", "add", "med0", "netns", t.ns("medb"), "address", t.mac(n, 2),
            "type", "veth", "peer", "name", "rmedb", "netns", t.ns("rtr"),
            "address", t.mac(n, 1))  # fmt: skip
        for role, dev, host, peer in (("medb", "med0", 2, 1), ("rtr", "rmedb", 1, 2)):
            t.ip(role, "addr", "add", f"{t.v4(n, host)}/24", "dev", dev)
            t.ip(role, "neigh", "replace", t.v4(n, peer), "lladdr", t.mac(n, peer), "dev", dev,
                 "nud", "permanent")  # fmt: skip
            t.ip(role, "link", "set", dev, "up")
        t.ip("medb", "route", "add", "default", "via", t.v4(n, 1))

    def down(self) -> None:
        self.topo.down()

    def rx_packets(self, role: str, dev: str) -> int:
        return self.topo.link_stats(role, dev)["rx_packets"]

    def tx_packets(self, role: str, dev: str) -> int:
        return self.topo.link_stats(role, dev)["tx_packets"]


# ---- the capture pre-filter, as the kernel holds it ----------------------------------------


def _prefilter_maps(lab: Lab) -> list[int]:
    """Ids of the IPv4 LPM tries (key: 4-byte prefix length + 4-byte address) held by the
    processes of the router's namespace: flowtapd's eBPF pre-filter maps."""
    pids = run("ip", "netns", "pids", lab.ns("rtr")).stdout.split()
    ids: set[int] = set()
    for pid in pids:
        fdinfo = Path(f"/proc/{pid}/fdinfo")
        try:
            entries = list(fdinfo.iterdir())
        except OSError:
            continue
        for entry in entries:
            try:
                info = dict(line.split(":", 1) for line in entry.read_text().splitlines()
                            if ":" in line)
            except OSError:
                continue
            if info.get("map_type", "").strip() == str(bpf_syscall.BPF_MAP_TYPE_LPM_TRIE) and \
                    info.get("key_size", "").strip() == "8":
                ids.add(int(info["map_id"]))
    return sorted(ids)


def prefilter_admits(lab: Lab, address: str) -> bool:
    """Whether flowtapd's kernel pre-filter admits IPv4 packets to or from ``address`` now:
    a longest-prefix lookup in its maps, read from the kernel (not what flowtapd says)."""
    key = struct.pack("=I", 32) + ipaddress.IPv4Address(address).packed
    for map_id in _prefilter_maps(lab):
        fd = bpf_syscall.map_fd_by_id(map_id)
        try:
            if bpf_syscall.map_lookup(fd, key, 1) is not None:
                return True
        finally:
            os.close(fd)
    return False


def check_prefilter(lab: Lab, present: tuple[str, ...] = (),
                    absent: tuple[str, ...] = ()) -> None:
    """Right after a 200 OK, the kernel pre-filter already admits each ``present`` address
    and none of the ``absent`` ones (the 200 OK means the change is live; nothing to wait for).

    Raises:
        AssertionError: it does not.
    """
    wrong = [a for a in present if not prefilter_admits(lab, a)]
    wrong += [a for a in absent if prefilter_admits(lab, a)]
    if wrong:
        raise AssertionError(f"the kernel pre-filter disagrees with the 200 OK for {wrong}")


# ---- pcaps ---------------------------------------------------------------------------------

_PCAP_HEADER = 24
_RECORD = struct.Struct("<IIII")


class PcapCounter:
    """Counts the records of a pcap that a collector is still writing (``--flush``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = _PCAP_HEADER
        self.count = 0

    def poll(self) -> int:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return self.count
        pos = 0
        while pos + _RECORD.size <= len(data):
            incl = _RECORD.unpack_from(data, pos)[2]
            if pos + _RECORD.size + incl > len(data):
                break
            pos += _RECORD.size + incl
            self.count += 1
        self.offset += pos
        return self.count
