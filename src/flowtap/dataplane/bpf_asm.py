"""Classic BPF (``struct sock_filter``) instructions and a tiny assembler with labels. Pure.

The opcodes are the kernel's (``linux/filter.h``); :class:`Asm` resolves label names into the
relative forward jumps classic BPF requires and refuses a jump that does not fit.
:mod:`flowtap.dataplane.bpf` compiles criteria into programs with it.
"""

from __future__ import annotations

import itertools

from flowtap.errors import JumpTooFar

Insn = tuple[int, int, int, int]  # code, jt, jf, k (struct sock_filter)

LD, LDX, ST, ALU, JMP, RET, MISC = 0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x07
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
ADD, SUB, AND, RSH = 0x00, 0x10, 0x50, 0x70
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
K, X = 0x00, 0x08
TAX, TXA = 0x00, 0x80
SKF_AD_OFF = 0xFFFFF000
SKF_AD_PROTOCOL = 0
SKF_AD_PKTTYPE = 4

BPF_MAXINSNS = 4096


class Asm:
    """A tiny assembler: conditional jumps and ``ja`` may name labels."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int | str, int | str, int | str]] = []
        self.labels: dict[str, int] = {}
        self._ids = itertools.count()

    def new(self, hint: str) -> str:
        return f"{hint}{next(self._ids)}"

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def op(self, code: int, k: int = 0) -> None:
        self.code.append((code, 0, 0, k))

    def jmp(self, cond: int, k: int, jt: int | str = 0, jf: int | str = 0) -> None:
        self.code.append((JMP | cond | K, jt, jf, k))

    def ja(self, target: str) -> None:
        self.code.append((JMP | JA, 0, 0, target))

    def ret(self, value: int) -> None:
        self.op(RET | K, value)

    def when(self, cond: int, k: int, value: int) -> None:
        """Return ``value`` if A <cond> k."""
        self.jmp(cond, k, 0, 1)
        self.ret(value)

    def unless(self, cond: int, k: int, value: int) -> None:
        """Return ``value`` unless A <cond> k."""
        self.jmp(cond, k, 1, 0)
        self.ret(value)

    def assemble(self) -> tuple[Insn, ...]:
        out: list[Insn] = []
        for i, (code, jt, jf, k) in enumerate(self.code):
            def rel(t: int | str, pos: int = i) -> int:
                return t if isinstance(t, int) else self.labels[t] - pos - 1
            rjt, rjf = rel(jt), rel(jf)
            rk = rel(k) if isinstance(k, str) else k
            if not (0 <= rjt <= 255 and 0 <= rjf <= 255 and rk >= 0):
                raise JumpTooFar
            out.append((code, rjt, rjf, rk & 0xFFFFFFFF))
        return tuple(out)
