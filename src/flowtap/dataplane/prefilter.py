"""The kernel pre-filter: one eBPF socket filter whose decisions come from four LPM tries.

Every capture socket carries the same program. It runs on the forwarding CPU for each packet
of a captured device, before anything is cloned into the ring, and must never reject a packet
that the exact userspace match (:mod:`flowtap.dataplane.match`) would accept; it may accept
more, since userspace re-checks everything. It:

- rejects packets the device sends (``PACKET_OUTGOING``) and packets for other hosts
  (``PACKET_OTHERHOST``: never forwarded);
- selects the family from ``skb->protocol`` (the sockets are bound to ETH_P_ALL) and rejects
  anything but IPv4 and IPv6;
- IPv4: checks the version nibble and IHL >= 5, rejects later fragments (only a first
  fragment is ever copied), then looks the destination up in the ``dst4`` trie and, on a
  miss, the source in ``src4``;
- IPv6: checks the version nibble, looks the destination up in ``dst6`` (the 16-byte load
  fails, and the packet is rejected, when it is shorter than the 40-byte header), then the
  source in ``src6``; later fragments pass (their fragment header may sit anywhere in the
  extension chain) and userspace drops them;
- accepts the whole packet on a hit, else rejects it.

So a packet costs at most two trie lookups, whatever the number of criteria. A criterion is
filed under the prefixes :func:`flowtap.dataplane.prefixes.filing` gives: destination side in
the ``dst`` trie, source side in the ``src`` trie, ``/0`` in the ``dst`` trie. Maps are updated
one element at a time with ``bpf()``; the next packet sees each change, so :meth:`add` and
:meth:`remove` cost a number of syscalls that depends on that criterion alone. Filing ignores
a criterion's input interfaces (the same tries serve every capture socket); the exact match
checks them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections import Counter
from collections.abc import Collection

from flowtap.dataplane import bpf_syscall as sys_bpf
from flowtap.dataplane.ebpf_asm import (
    ADD,
    AND,
    FN_MAP_LOOKUP_ELEM,
    FN_SKB_LOAD_BYTES,
    JEQ,
    JLT,
    JNE,
    JSET,
    R0,
    R1,
    R2,
    R3,
    R4,
    R6,
    R10,
    Asm,
    B,
    H,
    W,
    alu64_imm,
    call,
    ld_abs,
    ld_map_fd,
    ldx_mem,
    mov64,
    mov64_imm,
    st_mem,
    stx_mem,
    to_be,
)
from flowtap.dataplane.match import applies
from flowtap.dataplane.prefixes import BITS, DST, SRC, Prefix, filing
from flowtap.intercept.criteria import Match

ACCEPT = 0x40000  # snap length returned for accepted packets (whole packet), as bpf.ACCEPT
DEFAULT_MAX_ENTRIES = 1 << 20  # per trie
PACKET_OTHERHOST, PACKET_OUTGOING = 3, 4
SKB_PKT_TYPE, SKB_PROTOCOL = 4, 16  # offsets in struct __sk_buff
_VALUE = b"\x01"

Entry = tuple[int, str, Prefix]  # (IP version, side, prefix): one element of one trie


def _key(version: int, prefix: Prefix) -> bytes:
    """``struct bpf_lpm_trie_key``: prefix length in host order, then the address in network
    order."""
    return struct.pack("=I", prefix.length) + prefix.address.to_bytes(BITS[version] // 8, "big")


def program(maps: dict[tuple[int, str], int]) -> bytes:
    """The filter's instructions for the tries ``maps[(version, side)]`` (map fds)."""
    a = Asm()
    a.emit(mov64(R6, R1))  # LD_ABS and the helpers want the context in R6/R1
    a.emit(ldx_mem(W, R0, R6, SKB_PKT_TYPE))
    a.jmp_imm(JEQ, R0, PACKET_OUTGOING, "reject")
    a.jmp_imm(JEQ, R0, PACKET_OTHERHOST, "reject")
    a.emit(ldx_mem(W, R0, R6, SKB_PROTOCOL))  # a __be16 as stored: compare in network order
    a.jmp_imm(JEQ, R0, socket.htons(0x0800), "v4")
    a.jmp_imm(JNE, R0, socket.htons(0x86DD), "reject")

    # IPv6: key at R10-24 (prefix length, then 16 address bytes)
    a.emit(ld_abs(B, 0))
    a.emit(alu64_imm(AND, R0, 0xF0))
    a.jmp_imm(JNE, R0, 0x60, "reject")
    a.emit(st_mem(W, R10, -24, 128))
    for offset, side in ((24, DST), (8, SRC)):
        a.emit(mov64(R1, R6), mov64_imm(R2, offset), mov64(R3, R10), alu64_imm(ADD, R3, -20),
               mov64_imm(R4, 16), call(FN_SKB_LOAD_BYTES))
        a.jmp_imm(JNE, R0, 0, "reject")  # shorter than the header
        _lookup(a, maps[(6, side)], -24)
    a.ja("reject")

    # IPv4: key at R10-8 (prefix length, then 4 address bytes)
    a.label("v4")
    a.emit(ld_abs(B, 0))  # LD_ABS ends the program with 0 when the packet is too short
    a.emit(mov64(R1, R0), alu64_imm(AND, R1, 0xF0))
    a.jmp_imm(JNE, R1, 0x40, "reject")
    a.emit(alu64_imm(AND, R0, 0x0F))
    a.jmp_imm(JLT, R0, 5, "reject")
    a.emit(ld_abs(H, 6))
    a.jmp_imm(JSET, R0, 0x1FFF, "reject")  # a later fragment: never copied
    a.emit(st_mem(W, R10, -8, 32))
    for offset, side in ((16, DST), (12, SRC)):
        a.emit(ld_abs(W, offset), to_be(R0, 32), stx_mem(W, R10, R0, -4))
        _lookup(a, maps[(4, side)], -8)

    a.label("reject")
    a.ret(0)
    a.label("accept")
    a.ret(ACCEPT)
    return a.assemble()


def _lookup(a: Asm, map_fd: int, key_offset: int) -> None:
    """Accept if the key at R10+key_offset has a prefix in the trie, else fall through."""
    a.emit(ld_map_fd(R1, map_fd), mov64(R2, R10), alu64_imm(ADD, R2, key_offset),
           call(FN_MAP_LOOKUP_ELEM))
    a.jmp_imm(JNE, R0, 0, "accept")


class Prefilter:
    """The four tries, the loaded program, and which criteria filed which trie elements.

    Not thread-safe: the engine calls it under its own lock. Failures raise :class:`OSError`
    with the kernel's errno (ENOSPC when a trie is full, ENOMEM, EPERM): the errno is what the
    caller needs to tell capacity from privilege, which a ``CaptureError`` (one interface's
    fault) would not say.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        """Create the tries (``max_entries`` elements each) and load the program.

        Raises:
            OSError: the kernel refused a map or the program (no CAP_BPF, no memory);
                :class:`flowtap.dataplane.bpf_syscall.ProgramRejected` carries the verifier log.
        """
        self._maps: dict[tuple[int, str], int] = {}
        self._filed: dict[int, frozenset[Entry]] = {}
        self._counts: Counter[Entry] = Counter()
        self.program_fd = -1
        try:
            for version in (4, 6):
                for side in (DST, SRC):
                    self._maps[(version, side)] = sys_bpf.map_create(
                        sys_bpf.BPF_MAP_TYPE_LPM_TRIE, 4 + BITS[version] // 8, len(_VALUE),
                        max_entries, sys_bpf.BPF_F_NO_PREALLOC, f"flowtap_{side}{version}")
            insns = program(self._maps)
            self.program_length = len(insns) // 8
            self.program_fd = sys_bpf.prog_load(sys_bpf.BPF_PROG_TYPE_SOCKET_FILTER, insns,
                                                "GPL", "flowtap_prefilt")
        except BaseException:
            self.close()
            raise

    def attach(self, sock: socket.socket) -> None:
        """Make the program ``sock``'s filter (replacing any classic or eBPF one atomically).

        Raises:
            OSError: the socket refused it.
        """
        sys_bpf.attach_bpf(sock, self.program_fd)

    def add(self, key: int, match: Match, versions: Collection[int]) -> None:
        """File ``match`` as criterion ``key`` for each IP version of ``versions`` it applies
        to, replacing what ``key`` filed before. New elements go in before old ones go out, so
        a packet both filings select is never rejected in between.

        Raises:
            OSError: a trie update failed; every element this call inserted has been deleted
                again and ``key`` keeps its previous filing.
        """
        new = frozenset(
            (v, side, p) for v in sorted(versions) if applies(match, v, None)
            for side, prefixes in (filing(match, v),) for p in prefixes
        )
        old = self._filed.get(key, frozenset())
        inserted: list[Entry] = []
        try:
            for entry in new - old:
                if not self._counts[entry]:
                    self._update(entry)
                    inserted.append(entry)
        except OSError:
            for entry in inserted:
                self._delete_quietly(entry)
            raise
        self._counts.update(new - old)
        if new:
            self._filed[key] = new
        else:
            self._filed.pop(key, None)
        self._release(old - new)

    def remove(self, key: int) -> None:
        """Undo what ``key`` filed (nothing if it filed nothing).

        Raises:
            OSError: a trie delete failed (the element stays in the trie, which only makes the
                pre-filter accept more; the bookkeeping has already forgotten ``key``).
        """
        self._release(self._filed.pop(key, frozenset()))

    def clear(self) -> None:
        """Remove every key."""
        entries = list(self._counts)
        self._filed.clear()
        self._counts.clear()
        for entry in entries:
            self._delete_quietly(entry)

    def close(self) -> None:
        """Close the program and the tries (sockets still holding the program keep it)."""
        for fd in [*self._maps.values(), self.program_fd]:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._maps.clear()
        self.program_fd = -1

    def __len__(self) -> int:
        """Keys that filed at least one element."""
        return len(self._filed)

    def entries(self) -> int:
        """Elements in the four tries."""
        return len(self._counts)

    def memory(self) -> int | None:
        """Bytes the kernel charges for the four tries (None if it does not say)."""
        sizes = [sys_bpf.memlock(fd) for fd in self._maps.values()]
        return None if None in sizes else sum(s for s in sizes if s is not None)

    def _release(self, entries: Collection[Entry]) -> None:
        for entry in entries:
            self._counts[entry] -= 1
        gone = [e for e in entries if not self._counts[e]]
        for entry in gone:
            del self._counts[entry]
        for entry in gone:
            sys_bpf.map_delete(self._maps[entry[:2]], _key(entry[0], entry[2]))

    def _update(self, entry: Entry) -> None:
        version, side, prefix = entry
        sys_bpf.map_update(self._maps[(version, side)], _key(version, prefix), _VALUE)

    def _delete_quietly(self, entry: Entry) -> None:
        # rollback and clear: an element left behind only makes the filter accept more
        with contextlib.suppress(OSError):
            sys_bpf.map_delete(self._maps[entry[:2]], _key(entry[0], entry[2]))
