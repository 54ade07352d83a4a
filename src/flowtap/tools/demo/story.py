"""The demo's story, step by step (``make demo``; see :mod:`flowtap.tools.demo.run`)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import secrets
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import asyncssh
from lxml import etree

from flowtap import audit
from flowtap.dataplane import ffi
from flowtap.tools import pcap
from flowtap.tools.demo import config
from flowtap.tools.demo.daemon import Proc, admin_password, collector, collector_summary, flowtapd
from flowtap.tools.demo.lab import (
    AGENCY_A,
    AGENCY_B,
    BYSTANDER,
    INGRESS_DEV,
    RECEIVER_DEV,
    SENDER,
    Agency,
    Lab,
    PcapCounter,
    check_prefilter,
)
from flowtap.tools.demo.readme import write_readme
from flowtap.tools.demo.traffic import Flow, Sender, packets
from flowtap.tools.dtcp_client import DEFAULT_PORT, AsyncDtcpClient
from flowtap.tools.netconf_client import NetconfClient

AGENCIES = (AGENCY_A, AGENCY_B)
FLOWS = (Flow("target A", AGENCY_A.target, 40000, 5004),
         Flow("target B", AGENCY_B.target, 40002, 443),
         Flow("bystander", BYSTANDER, 40004, 8080))  # fmt: skip
NETCONF_PORT = 830
SVC = config.SVC
AFTER_DELETE = 100  # packets per flow sent after the DELETEs
INDENT = 12


def say(tag: str, text: str, *more: str) -> None:
    print(f"[{tag}]".ljust(INDENT) + text, flush=True)
    for line in more:
        print(" " * INDENT + line, flush=True)


class Progress:
    """One line of counters, refreshed in place on a terminal (a line a second otherwise)."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.last = 0.0
        self.text = ""
        self.printed = ""

    def show(self, text: str, *, final: bool = False) -> None:
        self.text = text
        if self.tty:
            print("\r" + " " * INDENT + text + "\x1b[K", end="\n" if final else "", flush=True)
        elif (final and text != self.printed) or time.monotonic() - self.last >= 1.0:
            print(" " * INDENT + text, flush=True)
            self.last, self.printed = time.monotonic(), text


class Story:
    def __init__(self, lab: Lab, out: Path, *, seconds: float, rate: float) -> None:
        self.lab = lab
        self.out = out
        self.seconds = seconds
        self.rate = rate
        self.state_dir = out / "state"
        self.daemon: Proc | None = None
        self.collectors: dict[str, Proc] = {}
        self.sender: Sender | None = None
        self.stop_traffic = threading.Event()
        self.state: dict[str, list[str]] = {}  # flow-tap-state after the tapped traffic
        self.passwords = {a.user: secrets.token_urlsafe(12) for a in AGENCIES}

    # ---- paths ----

    def pcap_path(self, agency: Agency) -> Path:
        return self.out / f"agency-{agency.label.lower()}.pcap"

    def prepare_out(self) -> None:
        """A fresh output directory (only the files this demo writes are removed)."""
        self.out.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        for name in ("flowtapd.log", "collector-a.log", "collector-b.log", "agency-a.pcap",
                     "agency-b.pcap", "README.txt"):  # fmt: skip
            (self.out / name).unlink(missing_ok=True)

    # ---- the story ----

    async def run(self) -> bool:
        started = time.monotonic()
        lab = self.lab
        say("topology", f"sender {SENDER} -> router (flowtapd, ingress {INGRESS_DEV}) -> "
            "receiver with subscribers 198.19.0.0/16",
            *(f"agency {a.label}: {a.address} (mediation device and content destination, "
              f"namespace {lab.ns(a.role)})" for a in AGENCIES))  # fmt: skip
        self.daemon = await asyncio.to_thread(
            flowtapd, lab.ns("rtr"), self.state_dir, self.out / "flowtapd.log")
        password = admin_password(self.state_dir)
        say("flowtapd", f"running in {lab.ns('rtr')} on a fresh state directory "
            f"({self.state_dir}), factory default",
            f"NETCONF 127.0.0.1:{NETCONF_PORT}; the first boot generated admin's password into "
            f"{self.state_dir}/admin-credentials")  # fmt: skip
        with ffi.netns(lab.ns("rtr")):
            nc = await NetconfClient.connect("127.0.0.1", NETCONF_PORT, "admin", password)
        clients: list[AsyncDtcpClient] = []
        try:
            await self.configure(nc)
            await self.start_collectors()
            ids = {}
            for agency in AGENCIES:
                client, criteria_id = await self.add(agency)
                clients.append(client)
                ids[agency.label] = criteria_id
            await self.list_own(clients)
            check_prefilter(lab, present=tuple(a.target for a in AGENCIES))
            say("dataplane", "the kernel pre-filter admits both targets' packets: checked "
                "right after the 200 OKs, with nothing to wait for (a 200 OK means live)")
            tapped = packets(FLOWS, max(1, int(self.rate * self.seconds / len(FLOWS))))
            say("traffic", f"{len(FLOWS)} UDP flows at {self.rate:.0f} packets/s for "
                f"{self.seconds:.0f} s, from {SENDER} to",
                *(f"{f.name:10} {f.dst}:{f.dport}" for f in FLOWS))  # fmt: skip
            await self.send(tapped, "tapped")
            await self.show_state(nc)
            for agency, client in zip(AGENCIES, clients, strict=True):
                reply = await client.delete(agency.delete_fields(ids[agency.label]))
                say("DTCP", f"{agency.user}: DELETE Criteria-ID {ids[agency.label]}: "
                    f"{reply.status_line}")  # fmt: skip
                if reply.status != 200:
                    raise RuntimeError(f"DELETE refused: {reply.status_line}")
            check_prefilter(lab, absent=tuple(a.target for a in AGENCIES))
            after = packets(FLOWS, AFTER_DELETE, first_ident=len(tapped))
            say("traffic", f"after the DELETEs: {len(after)} more packets of the same flows")
            await self.send(after, "after")
        finally:
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.close()
            await nc.close()
        return await asyncio.to_thread(self.conclude, tapped, after, started)

    async def configure(self, nc: NetconfClient) -> None:
        listen = [a.router_address for a in AGENCIES]
        users = [config.mediation_device(a, self.passwords[a.user]) for a in AGENCIES]
        steps = (
            (config.interfaces(INGRESS_DEV),
             f"interfaces {config.SERVICE_PIC} (services PIC, unit 0 family inet) and "
             f"{config.INGRESS} (host-device {INGRESS_DEV})"),
            (config.flow_tap_service(), f"services flow-tap interface {config.SERVICE_PIC}.0"),
            (config.dtcp(listen), "system services flow-tap-dtcp ssh connection-limit 5 "
             f"rate-limit 5 (listening on {', '.join(listen)})"),
            (config.login([config.LI_OPERATOR_CLASS], users),
             f"login class {config.LI_OPERATOR} [flow-tap-operation]; users "
             f"{', '.join(u.name for u in users)} (class {config.LI_OPERATOR})"),
        )  # fmt: skip
        say("NETCONF", "admin (class li-admin: all + flow-tap-control) edits the candidate:",
            *(text for _, text in steps))
        for body, _ in steps:
            await nc.edit_candidate(body)
        t0 = time.monotonic()
        await nc.commit()
        state = await flow_tap_state(nc)
        running = (f"flow-tap {state.get('status', ['?'])[0]} on "
                   f"{state.get('interface', ['?'])[0]}, capturing "
                   f"{', '.join(state.get('capture-device', [])) or 'nothing'}"
                   if state else "flow-tap-state: not provided by this flowtapd")  # fmt: skip
        say("NETCONF", f"commit: ok ({time.monotonic() - t0:.2f} s); {running}")

    async def start_collectors(self) -> None:
        for agency in AGENCIES:
            name = agency.label.lower()
            self.collectors[agency.label] = await asyncio.to_thread(
                collector, self.lab.ns(agency.role), agency.address, agency.cd_port,
                self.pcap_path(agency), self.out / f"collector-{name}.log")
            say("collector", f"agency {agency.label}: flowtap-collector on "
                f"{agency.address}:{agency.cd_port} -> {self.pcap_path(agency)}")  # fmt: skip

    async def add(self, agency: Agency) -> tuple[AsyncDtcpClient, int]:
        key = asyncssh.read_private_key(str(self.state_dir / "ssh_host_ed25519_key"))
        with ffi.netns(self.lab.ns(agency.role)):
            client = await AsyncDtcpClient.connect(
                agency.router_address, DEFAULT_PORT, username=agency.user,
                password=self.passwords[agency.user],
                known_hosts=([key.convert_to_public()], [], []),
            )  # fmt: skip
        try:
            reply = await client.add(agency.add_fields())
        except BaseException:
            await client.close()
            raise
        say("DTCP", f"{agency.user} connects from {agency.address} to "
            f"{agency.router_address}:{DEFAULT_PORT} (SSH, host key pinned)",
            f"ADD Dest-Address {agency.target}, copies to {agency.address}:{agency.cd_port} "
            f"(Cdest-ID {agency.cdest_id}): {reply.status_line}, CRITERIA-ID "
            f"{reply.criteria_id}")  # fmt: skip
        if reply.status != 200 or reply.criteria_id is None:
            await client.close()
            raise RuntimeError(f"ADD refused: {reply.status_line}")
        return client, reply.criteria_id

    async def list_own(self, clients: list[AsyncDtcpClient]) -> None:
        seen = []
        for agency, client in zip(AGENCIES, clients, strict=True):
            entries = (await client.list()).entries()
            own = all(e.get("CSOURCE-ID") == agency.user for e in entries)
            others = [a.target for a in AGENCIES if a is not agency
                      and any(a.target in str(e) for e in entries)]  # fmt: skip
            seen.append(f"agency {agency.label} sees {len(entries)} "
                        f"{'criterion' if len(entries) == 1 else 'criteria'}"
                        f"{' (its own)' if own and not others else ' (NOT only its own!)'}")
        say("DTCP", "LIST: " + "; ".join(seen))

    async def send(self, batch: list[tuple[Flow, bytes]], phase: str) -> None:
        """Send ``batch`` while the progress line shows the counters; wait until every packet
        was forwarded and every expected copy arrived (or 10 s passed)."""
        lab = self.lab
        if self.sender is None:
            self.sender = Sender(lab)
        sender = self.sender
        counters = {a.label: PcapCounter(self.pcap_path(a)) for a in AGENCIES}
        base_sent = sender.sent
        base_fwd = await asyncio.to_thread(lab.rx_packets, "rcv", RECEIVER_DEV)
        base_copies = {k: c.poll() for k, c in counters.items()}
        want = {a.label: (sum(f.dst == a.target for f, _ in batch) if phase == "tapped" else 0)
                for a in AGENCIES}  # fmt: skip
        progress = Progress()

        def snapshot() -> tuple[int, int, dict[str, int]]:
            fwd = lab.rx_packets("rcv", RECEIVER_DEV) - base_fwd
            return (sender.sent - base_sent, fwd,
                    {k: c.poll() - base_copies[k] for k, c in counters.items()})

        def line(s: tuple[int, int, dict[str, int]]) -> str:
            copies = "  ".join(f"agency {k} {v}" for k, v in s[2].items())
            return f"sent {s[0]}  forwarded {s[1]}  copies: {copies}"

        task = asyncio.get_running_loop().run_in_executor(
            None, sender.send, [p for _, p in batch], self.rate, self.stop_traffic)
        deadline: float | None = None
        try:
            while True:
                s = await asyncio.to_thread(snapshot)
                progress.show(line(s))
                self.check_alive()
                if task.done():
                    await task
                    deadline = deadline or time.monotonic() + 10.0
                    settled = s[1] >= len(batch) and all(s[2][k] >= n for k, n in want.items())
                    if settled or time.monotonic() > deadline:
                        break
                await asyncio.sleep(0.25)
        except BaseException:
            self.stop_traffic.set()  # Ctrl-C: the sender thread must not outlive the loop
            raise
        await asyncio.sleep(0.5)  # anything still in flight lands in the final line
        progress.show(line(await asyncio.to_thread(snapshot)), final=True)

    async def show_state(self, nc: NetconfClient) -> None:
        state = self.state = await flow_tap_state(nc)
        if not state:
            say("state", "flow-tap-state: not provided by this flowtapd")
            return

        def v(name: str) -> str:
            return state.get(name, ["?"])[0]

        say("state", "flow-tap-state (admin, NETCONF <get>): "
            f"{v('dtcp-sessions')} DTCP sessions, {v('criteria')} criteria",
            f"matched {v('matched-packets')} packets ({v('matched-bytes')} bytes), sent "
            f"{v('sent-copies')} copies, dropped {v('dropped-copies')}; kernel: "
            f"{v('kernel-packets')} packets, {v('kernel-drops')} drops")  # fmt: skip

    # ---- the end ----

    def conclude(self, tapped: list[tuple[Flow, bytes]], after: list[tuple[Flow, bytes]],
                 started: float) -> bool:  # fmt: skip
        summaries = {label: collector_summary_of(proc) for label, proc in self.collectors.items()}
        self.collectors.clear()
        flowtapd_status = self.daemon.stop() if self.daemon is not None else None
        self.daemon = None
        results: list[tuple[str, bool, str]] = []
        for agency in AGENCIES:
            _, got = pcap.read(self.pcap_path(agency).read_bytes())
            expected = [p for f, p in tapped if f.dst == agency.target]
            exact = collections.Counter(got) == collections.Counter(expected)
            allowed = set(expected)
            foreign = sum(1 for p in got if p not in allowed)
            detail = (f"{len(got)} packets = exactly the {len(expected)} packets sent to target "
                      f"{agency.target} while tapped, byte-identical" if exact else
                      f"{len(got)} packets, expected {len(expected)} to {agency.target}; "
                      f"{foreign} are not among them")  # fmt: skip
            per_source = dict(summaries[agency.label].get("per_source") or {})
            results.append((f"agency {agency.label}", exact,
                            f"{self.pcap_path(agency)}: {detail} (from "
                            f"{', '.join(per_source) or 'nobody'})"))
        if self.state:
            copies = sum(f.dst in {a.target for a in AGENCIES} for f, _ in tapped)
            counted = [self.state.get(k, ["?"])[0] for k in ("matched-packets", "sent-copies",
                                                              "dropped-copies")]
            results.append(("flow-tap-state", counted == [str(copies), str(copies), "0"],
                            f"matched {counted[0]}, sent {counted[1]} copies, dropped "
                            f"{counted[2]}: the collectors received {copies}"))  # fmt: skip
        sent = len(tapped) + len(after)
        fwd = self.lab.rx_packets("rcv", RECEIVER_DEV)
        results.append(("receiver", fwd == sent,
                        f"{fwd} of {sent} packets arrived (targets' traffic forwarded as usual)"))
        log = (self.out / "flowtapd.log").read_text(errors="replace")
        leaked = [a.target for a in AGENCIES if a.target in log]
        results.append(("flowtapd log", not leaked and flowtapd_status == 0,
                        f"{self.out}/flowtapd.log: {len(log.splitlines())} lines at INFO, "
                        f"{'no target address' if not leaked else 'LEAKS ' + ', '.join(leaked)}; "
                        f"exit status {flowtapd_status}"))  # fmt: skip
        log_path = self.state_dir / "audit" / "li-audit.log"
        verdict = audit.verify(log_path)
        kinds = audit_kinds(log_path) if verdict.ok else ""
        results.append(("LI audit", verdict.ok and verdict.clean_close,
                        f"{log_path}: {verdict.records} records, hash chain "
                        f"{'verified' if verdict.ok else 'BROKEN: ' + str(verdict.error)}"
                        f" ({kinds})"))  # fmt: skip
        ok = all(passed for _, passed, _ in results)
        print("[summary]", flush=True)
        for name, passed, text in results:
            print(f"  {name:15}{'OK  ' if passed else 'FAIL'} {text}", flush=True)
        write_readme(self.out, results, ok, time.monotonic() - started)
        print(f"  {'':15}     pcaps, logs and the audit log stay in {self.out}/ "
              f"(see {self.out}/README.txt)", flush=True)  # fmt: skip
        return ok

    def check_alive(self) -> None:
        """Raises RuntimeError when flowtapd or a collector has exited."""
        for proc in [self.daemon, *self.collectors.values()]:
            if proc is not None and not proc.running:
                raise RuntimeError(f"{proc.name} exited ({proc.proc.returncode}):\n"
                                   f"{proc.tail(5)}")

    def cleanup(self) -> None:
        """Stop everything this demo started (idempotent; also after a failure or Ctrl-C)."""
        self.stop_traffic.set()
        if self.sender is not None:
            self.sender.close()
            self.sender = None
        for proc in self.collectors.values():
            proc.stop(grace=5)
        self.collectors.clear()
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None


def collector_summary_of(proc: Proc) -> dict[str, Any]:
    proc.stop(grace=5)
    try:
        return collector_summary(proc)
    except RuntimeError:
        return {}


async def flow_tap_state(nc: NetconfClient) -> dict[str, list[str]]:
    """The leaves of ``/ftsvc:flow-tap-state`` from ``<get>`` (empty when absent)."""
    reply = await nc.rpc(f'<get><filter type="subtree"><flow-tap-state xmlns="{SVC}"/>'
                         "</filter></get>")  # fmt: skip
    state = reply.find(f".//{{{SVC}}}flow-tap-state")
    out: dict[str, list[str]] = {}
    if state is not None:
        for leaf in state:
            out.setdefault(etree.QName(leaf).localname, []).append(leaf.text or "")
    return out


def audit_kinds(path: Path) -> str:
    """``auth 3, dtcp ADD 2, ...``: the records of an audit log by event and method."""
    counts: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines()[1:]:
        record = json.loads(line)
        method = record.get("method") if record["event"] == "dtcp" else None
        counts[f"{record['event']} {method}" if method else record["event"]] += 1
    return ", ".join(f"{k} {v}" for k, v in counts.items())

