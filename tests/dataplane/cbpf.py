"""A classic BPF interpreter (the subset the kernel accepts for socket filters), for tests."""

from __future__ import annotations

import struct

from flowtap.dataplane.bpf_asm import SKF_AD_OFF, SKF_AD_PKTTYPE, SKF_AD_PROTOCOL, Insn

M32 = 0xFFFFFFFF


class OutOfBounds(Exception):
    pass


def _load(pkt: bytes, off: int, size: int, protocol: int, pkttype: int,
          trace: list[int] | None = None) -> int:
    if off >= SKF_AD_OFF:
        ad = off - SKF_AD_OFF
        if ad == SKF_AD_PROTOCOL:
            return protocol
        if ad == SKF_AD_PKTTYPE:
            return pkttype
        raise ValueError(f"ancillary {ad}")
    if trace is not None:
        trace.append(off)
    if off < 0 or off + size > len(pkt):
        raise OutOfBounds
    return int.from_bytes(pkt[off:off + size], "big")


def run(prog: tuple[Insn, ...], pkt: bytes, protocol: int, pkttype: int = 0,
        trace: list[int] | None = None) -> int:
    """Return value of the program (0 = drop). Out-of-bounds loads return 0 like the kernel.
    ``trace`` collects the offsets of the packet loads (LD/LDX from the packet)."""
    a = x = 0
    mem = [0] * 16
    pc = 0
    steps = 0
    try:
        while True:
            steps += 1
            assert steps <= len(prog) + 1, "backward jump?"
            code, jt, jf, k = prog[pc]
            pc += 1
            cls = code & 0x07
            if cls == 0x00:  # LD
                mode, size = code & 0xE0, code & 0x18
                width = {0x00: 4, 0x08: 2, 0x10: 1}[size]
                if mode == 0x00:
                    a = k
                elif mode == 0x20:
                    a = _load(pkt, k, width, protocol, pkttype, trace)
                elif mode == 0x40:
                    a = _load(pkt, (x + k) & M32, width, protocol, pkttype, trace)
                elif mode == 0x60:
                    a = mem[k]
                elif mode == 0x80:
                    a = len(pkt)
                else:
                    raise ValueError(hex(code))
            elif cls == 0x01:  # LDX
                mode = code & 0xE0
                if mode == 0x00:
                    x = k
                elif mode == 0xA0:
                    x = (_load(pkt, k, 1, protocol, pkttype, trace) & 0x0F) * 4
                elif mode == 0x80:
                    x = len(pkt)
                elif mode == 0x60:
                    x = mem[k]
                else:
                    raise ValueError(hex(code))
            elif cls == 0x02:
                mem[k] = a
            elif cls == 0x03:
                mem[k] = x
            elif cls == 0x04:  # ALU
                op = code & 0xF0
                src = x if code & 0x08 else k
                if op == 0x00:
                    a = (a + src) & M32
                elif op == 0x10:
                    a = (a - src) & M32
                elif op == 0x50:
                    a &= src
                elif op == 0x40:
                    a |= src
                elif op == 0x70:
                    a >>= src
                elif op == 0x60:
                    a = (a << src) & M32
                else:
                    raise ValueError(hex(code))
            elif cls == 0x05:  # JMP
                op = code & 0xF0
                src = x if code & 0x08 else k
                if op == 0x00:
                    pc += k
                    continue
                cond = {0x10: a == src, 0x20: a > src, 0x30: a >= src, 0x40: bool(a & src)}[op]
                pc += jt if cond else jf
            elif cls == 0x06:
                return a if code & 0x18 == 0x10 else k
            elif cls == 0x07:
                if code & 0xF8 == 0x00:
                    x = a
                else:
                    a = x
    except OutOfBounds:
        return 0


def pack(prog: tuple[Insn, ...]) -> bytes:
    return b"".join(struct.pack("<HBBI", *i) for i in prog)
