"""The fuzz targets, briefly, under pytest: every seed-corpus input (which includes each crash
found so far), then hypothesis-generated inputs, raw and spliced into corpus inputs.

Long coverage-guided runs are ``make fuzz`` (``tests/fuzz/run.py``, atheris).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import TARGETS

CORPUS = Path(__file__).parent / "corpus"
# Per target: hypothesis examples. Sized so the whole module takes ~8 s of CPU (~20 s on a busy box).
EXAMPLES = {
    "netconf_framing": 1000,
    "netconf_rpc": 600,
    "netconf_filter": 1000,
    "dtcp_message": 1000,
    "dtcp_fields": 500,
    "junos_text": 500,
    "x1_request": 500,
    "x3_stream": 1000,
}


def _target(name: str) -> Callable[[bytes], None]:
    fuzz_one: Callable[[bytes], None] = importlib.import_module(TARGETS[name]).fuzz_one
    return fuzz_one


def _seeds(name: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((CORPUS / name).iterdir())]


def test_every_target_has_a_seed_corpus() -> None:
    assert set(EXAMPLES) == set(TARGETS)
    for name in TARGETS:
        assert len(_seeds(name)) >= 3, name


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seed_corpus(name: str) -> None:
    fuzz_one = _target(name)
    for data in _seeds(name):
        fuzz_one(data)


def _splice(parts: tuple[bytes, int, int, bytes]) -> bytes:
    seed, at, cut, insert = parts
    at %= len(seed) + 1
    return seed[:at] + insert + seed[at + cut % 16 :]


def _inputs(name: str) -> st.SearchStrategy[bytes]:
    spliced = st.tuples(st.sampled_from(_seeds(name)), st.integers(0, 1 << 16),
                        st.integers(0, 255), st.binary(max_size=32)).map(_splice)  # fmt: skip
    return st.one_of(st.binary(max_size=512), spliced)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_generated_inputs(name: str) -> None:
    fuzz_one = _target(name)

    @settings(max_examples=EXAMPLES[name], deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(_inputs(name))
    def run(data: bytes) -> None:
        fuzz_one(data)

    run()
