"""eBPF (``struct bpf_insn``) instructions and a small assembler with labels. Pure.

An instruction is 8 bytes, little-endian: opcode, a byte holding the destination register in
its low nibble and the source register in its high nibble, a signed 16-bit offset and a signed
32-bit immediate (``linux/bpf.h``). A 64-bit immediate load takes two slots. Jump offsets
count slots from the instruction after the jump; :class:`Asm` resolves label names into them.
:mod:`flowtap.dataplane.prefilter` writes the capture pre-filter with it, so the runtime needs
no compiler.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from flowtap.errors import JumpTooFar

# instruction classes
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
# sizes and modes (load/store classes)
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
IMM, ABS, IND, MEM = 0x00, 0x20, 0x40, 0x60
# ALU operations
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
NEG, MOD, XOR, MOV, ARSH, END = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
# jump operations
JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
CALL, EXIT, JLT, JLE, JSLT, JSLE = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
# operand source: the immediate or the source register (for END: the target byte order)
K, X = 0x00, 0x08
TO_LE, TO_BE = 0x00, 0x08

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)
PSEUDO_MAP_FD = 1  # src_reg of a 64-bit immediate load whose immediate is a map fd

# helper function ids (enum bpf_func_id)
FN_MAP_LOOKUP_ELEM = 1
FN_SKB_LOAD_BYTES = 26

_INSN = struct.Struct("<BBhi")
SIZE = _INSN.size


@dataclass(frozen=True, slots=True)
class Insn:
    """One ``struct bpf_insn`` slot."""

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def encode(self) -> bytes:
        return _INSN.pack(self.code, (self.src << 4) | self.dst, self.off, _s32(self.imm))


def _s32(value: int) -> int:
    """``value`` as the signed 32-bit field holds it (0xFFFFFFFF and -1 are the same bits)."""
    if not -(1 << 31) <= value < 1 << 32:
        raise ValueError(f"immediate {value} does not fit 32 bits")
    return value - (1 << 32) if value >= 1 << 31 else value


def mov64(dst: int, src: int) -> Insn:
    return Insn(ALU64 | MOV | X, dst, src)


def mov64_imm(dst: int, imm: int) -> Insn:
    return Insn(ALU64 | MOV | K, dst, imm=imm)


def alu64_imm(op: int, dst: int, imm: int) -> Insn:
    return Insn(ALU64 | op | K, dst, imm=imm)


def alu64(op: int, dst: int, src: int) -> Insn:
    return Insn(ALU64 | op | X, dst, src)


def alu32_imm(op: int, dst: int, imm: int) -> Insn:
    return Insn(ALU | op | K, dst, imm=imm)


def to_be(dst: int, bits: int) -> Insn:
    """Convert the low ``bits`` (16, 32, 64) of ``dst`` from host to network byte order."""
    if bits not in (16, 32, 64):
        raise ValueError(f"byte swap of {bits} bits")
    return Insn(ALU | END | TO_BE, dst, imm=bits)


def ld_abs(size: int, offset: int) -> Insn:
    """R0 = the packet's ``size`` bytes at ``offset`` in host order (R6 must hold the context;
    an out-of-bounds load ends the program with 0)."""
    return Insn(LD | size | ABS, imm=offset)


def ld_ind(size: int, src: int, offset: int) -> Insn:
    """Like :func:`ld_abs` at ``src + offset``."""
    return Insn(LD | size | IND, src=src, imm=offset)


def ldx_mem(size: int, dst: int, src: int, off: int) -> Insn:
    """dst = *(size *)(src + off)"""
    return Insn(LDX | size | MEM, dst, src, off)


def stx_mem(size: int, dst: int, src: int, off: int) -> Insn:
    """*(size *)(dst + off) = src"""
    return Insn(STX | size | MEM, dst, src, off)


def st_mem(size: int, dst: int, off: int, imm: int) -> Insn:
    """*(size *)(dst + off) = imm"""
    return Insn(ST | size | MEM, dst, off=off, imm=imm)


def ld_imm64(dst: int, imm: int, src: int = 0) -> tuple[Insn, Insn]:
    """dst = 64-bit ``imm``: two slots, the second carrying the upper half."""
    if not 0 <= imm < 1 << 64:
        raise ValueError(f"immediate {imm} does not fit 64 bits")
    return (Insn(LD | DW | IMM, dst, src, imm=imm & 0xFFFFFFFF),
            Insn(0, imm=imm >> 32))


def ld_map_fd(dst: int, map_fd: int) -> tuple[Insn, Insn]:
    """dst = the map behind ``map_fd`` (the verifier swaps the fd for the map's address)."""
    return ld_imm64(dst, map_fd, PSEUDO_MAP_FD)


def call(helper: int) -> Insn:
    return Insn(JMP | CALL, imm=helper)


def exit_insn() -> Insn:
    return Insn(JMP | EXIT)


Target = int | str  # a slot offset or a label name


class Asm:
    """Collects instructions; jumps may name labels defined before or after them."""

    def __init__(self) -> None:
        self._slots: list[tuple[Insn, Target | None]] = []
        self._labels: dict[str, int] = {}

    def __len__(self) -> int:
        """Slots emitted so far (a 64-bit immediate load counts two)."""
        return len(self._slots)

    def emit(self, *insns: Insn | tuple[Insn, Insn]) -> None:
        for item in insns:
            for insn in item if isinstance(item, tuple) else (item,):
                self._slots.append((insn, None))

    def label(self, name: str) -> None:
        if name in self._labels:
            raise ValueError(f"label {name!r} defined twice")
        self._labels[name] = len(self._slots)

    def jmp_imm(self, op: int, dst: int, imm: int, target: Target) -> None:
        """if dst <op> imm goto target (64-bit compare)"""
        self._slots.append((Insn(JMP | op | K, dst, imm=imm), target))

    def jmp_reg(self, op: int, dst: int, src: int, target: Target) -> None:
        """if dst <op> src goto target (64-bit compare)"""
        self._slots.append((Insn(JMP | op | X, dst, src), target))

    def ja(self, target: Target) -> None:
        self._slots.append((Insn(JMP | JA), target))

    def ret(self, value: int) -> None:
        """R0 = value; exit"""
        self.emit(mov64_imm(R0, value), exit_insn())

    def assemble(self) -> bytes:
        """The program as the kernel takes it.

        Raises:
            KeyError: a jump names a label never defined.
            JumpTooFar: an offset does not fit the 16-bit field.
        """
        out = bytearray()
        for pos, (insn, target) in enumerate(self._slots):
            if target is not None:
                off = target if isinstance(target, int) else self._labels[target] - pos - 1
                if not -(1 << 15) <= off < 1 << 15:
                    raise JumpTooFar(f"jump of {off} slots at {pos}")
                out += Insn(insn.code, insn.dst, insn.src, off, insn.imm).encode()
            else:
                out += insn.encode()
        return bytes(out)
