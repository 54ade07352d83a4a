"""eBPF instruction encoding and the assembler's labels. The expected bytes are what
``llvm-mc -triple bpfel -show-encoding`` (LLVM 14) prints for the same instructions, except the
store of an immediate (``st_mem``), which that assembler cannot parse: its bytes follow the
opcode table of ``linux/bpf.h`` (and the kernel verifier accepts it in the pre-filter)."""

from __future__ import annotations

import pytest

from flowtap.dataplane import ebpf_asm as e
from flowtap.errors import JumpTooFar


@pytest.mark.parametrize(("insn", "hexbytes"), [
    (e.mov64_imm(e.R0, 0), "b700000000000000"),
    (e.exit_insn(), "9500000000000000"),
    (e.mov64(e.R6, e.R1), "bf16000000000000"),
    (e.ldx_mem(e.W, e.R0, e.R6, 4), "6160040000000000"),
    (e.ld_abs(e.B, 0), "3000000000000000"),
    (e.ld_abs(e.H, 6), "2800000006000000"),
    (e.ld_abs(e.W, 16), "2000000010000000"),
    (e.ld_ind(e.W, e.R7, 2), "4070000002000000"),
    (e.st_mem(e.W, e.R10, -8, 32), "620af8ff20000000"),
    (e.stx_mem(e.W, e.R10, e.R0, -4), "630afcff00000000"),
    (e.stx_mem(e.DW, e.R10, e.R1, -16), "7b1af0ff00000000"),
    (e.alu64_imm(e.ADD, e.R3, -20), "07030000ecffffff"),
    (e.alu64_imm(e.AND, e.R0, 0xF0), "57000000f0000000"),
    (e.alu64(e.ADD, e.R2, e.R3), "0f32000000000000"),
    (e.alu32_imm(e.RSH, e.R1, 4), "7401000004000000"),
    (e.to_be(e.R0, 32), "dc00000020000000"),
    (e.to_be(e.R5, 16), "dc05000010000000"),
    (e.call(e.FN_SKB_LOAD_BYTES), "850000001a000000"),
    (e.mov64_imm(e.R1, 0xFFFFFFFF), "b7010000ffffffff"),
])
def test_known_encodings(insn: e.Insn, hexbytes: str) -> None:
    assert insn.encode().hex() == hexbytes


def test_ld_imm64_takes_two_slots_with_the_upper_half_in_the_second() -> None:
    lo, hi = e.ld_imm64(e.R2, 0x1122334455667788)
    assert (lo.encode() + hi.encode()).hex() == "1802000088776655" "0000000044332211"


def test_ld_map_fd_marks_the_immediate_as_a_map_fd() -> None:
    lo, hi = e.ld_map_fd(e.R1, 5)
    assert (lo.encode() + hi.encode()).hex() == "1811000005000000" "0000000000000000"


@pytest.mark.parametrize("bad", [1 << 32, -(1 << 31) - 1])
def test_immediates_that_do_not_fit_are_refused(bad: int) -> None:
    with pytest.raises(ValueError):
        e.mov64_imm(e.R0, bad).encode()


def test_byte_swap_widths() -> None:
    with pytest.raises(ValueError):
        e.to_be(e.R0, 8)


def _slots(code: bytes) -> list[bytes]:
    return [code[i:i + 8] for i in range(0, len(code), 8)]


def test_forward_jump_counts_slots_after_the_jump_including_ld_imm64() -> None:
    a = e.Asm()
    a.jmp_imm(e.JEQ, e.R0, 4, "out")  # slot 0
    a.emit(e.ld_map_fd(e.R1, 3))  # slots 1-2
    a.emit(e.mov64_imm(e.R0, 1))  # slot 3
    a.label("out")
    a.ret(0)  # slots 4-5
    code = a.assemble()
    assert len(a) == 6 and len(code) == 48
    assert _slots(code)[0].hex() == "1500030004000000"  # jeq r0, 4, +3


def test_backward_jump_and_numeric_offsets() -> None:
    a = e.Asm()
    a.label("top")
    a.emit(e.alu64_imm(e.ADD, e.R0, 1))
    a.jmp_imm(e.JLT, e.R0, 10, "top")
    a.jmp_reg(e.JNE, e.R1, e.R2, 1)
    a.ja(0)
    a.ret(0)
    slots = _slots(a.assemble())
    assert slots[1].hex() == "a500feff0a000000"  # jlt r0, 10, -2
    assert slots[2].hex() == "5d21010000000000"  # jne r1, r2, +1
    assert slots[3].hex() == "0500000000000000"  # ja +0


def test_unknown_and_duplicate_labels() -> None:
    a = e.Asm()
    a.ja("nowhere")
    with pytest.raises(KeyError):
        a.assemble()
    a.label("x")
    with pytest.raises(ValueError):
        a.label("x")


def test_jump_beyond_16_bits_is_refused() -> None:
    a = e.Asm()
    a.ja("far")
    a.emit(*[e.mov64_imm(e.R0, 0)] * (1 << 15))
    a.label("far")
    a.ret(0)
    with pytest.raises(JumpTooFar):
        a.assemble()
