"""``demo-out/README.txt``: what the demo left behind and how to look at it."""

from __future__ import annotations

import time
from pathlib import Path

from flowtap.tools.demo.lab import AGENCY_A, AGENCY_B, BYSTANDER

TEXT = """\
flowtap demo output ({when})
================================================================

What ran: `make demo` (python -m flowtap.tools.demo) built network namespaces
(sender -> router running flowtapd -> receiver, plus one network per agency),
configured a fresh flowtapd over NETCONF, let two agencies' mediation devices
ADD one criterion each over DTCP, sent subscriber traffic through the router,
then DELETEd both criteria and sent a little more. The namespaces are gone;
these files stay.

agency-a.pcap   what agency A's content destination ({a_cd}:{a_port}) received:
                every packet sent to its target {a_target} while its criterion
                was installed, and nothing else.
agency-b.pcap   the same for agency B ({b_cd}:{b_port}), target {b_target}.
                Packets to the bystander {bystander} were forwarded but copied
                to nobody; packets sent after the DELETEs were copied to nobody.

                Each record is one copy's UDP payload: the original IPv4
                packet exactly as it entered the router (TTL not yet
                decremented), link type RAW. The outer IP/UDP header that
                carried it (source: the router's address on the agency's link,
                destination: the collector) is described in dataplane/ENCAP.md.
                Read them with:
                    tcpdump -nr {out}/agency-a.pcap
                    tshark -r {out}/agency-b.pcap

flowtapd.log    flowtapd's own output at INFO: no target address appears
                in it (targets are kept in the LI audit log only).
collector-*.log each collector's JSON lines (listening ports, final counts
                per outer source).
state/          flowtapd's state directory: the committed configuration and
                its history, the SSH host key, the generated admin
                credential, and audit/li-audit.log, the hash-chained LI
                audit log: one record per authentication and per DTCP
                request, the only file that names the targets. Check it:
                    .venv/bin/flowtap-audit verify {out}/state/audit/li-audit.log

Result of this run ({elapsed:.1f} s): {verdict}
{results}
"""


def write_readme(out: Path, results: list[tuple[str, bool, str]], ok: bool,
                 elapsed: float) -> None:
    lines = "\n".join(f"  {name:15}{'OK  ' if passed else 'FAIL'} {text}"
                      for name, passed, text in results)  # fmt: skip
    (out / "README.txt").write_text(TEXT.format(
        when=time.strftime("%Y-%m-%d %H:%M:%S"), out=out, a_cd=AGENCY_A.address,
        a_port=AGENCY_A.cd_port, a_target=AGENCY_A.target, b_cd=AGENCY_B.address,
        b_port=AGENCY_B.cd_port, b_target=AGENCY_B.target, bystander=BYSTANDER,
        elapsed=elapsed, verdict="PASS" if ok else "FAIL", results=lines,
    ))  # fmt: skip
