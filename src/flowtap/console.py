"""Console entry points. A program's stderr carries flowtap's own words only.

Scripts read a tool's stderr (``flowtap-dtcp`` reports an unverified reply there), so a warning
that a third-party package raises while it is imported (asyncssh under a newer cryptography, say)
must not land in it. Each entry point routes Python warnings to the ``py.warnings`` logger
*before* it imports the program, where they are shown only when flowtapd logs at DEBUG. Someone
who asked for warnings (``-W``, ``PYTHONWARNINGS``) still gets them as Python prints them.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from typing import cast

WARNINGS_LOGGER = "py.warnings"


def route_warnings_to_log() -> None:
    if sys.warnoptions:
        return
    logging.captureWarnings(True)
    # A WARNING record of py.warnings is dropped unless a program lowers this (flowtapd at DEBUG).
    logging.getLogger(WARNINGS_LOGGER).setLevel(logging.ERROR)


def _run(module: str) -> int:
    route_warnings_to_log()
    main = cast(Callable[[], int], importlib.import_module(module).main)
    return main()


def flowtapd() -> int:
    return _run("flowtap.cli")


def dtcp() -> int:
    return _run("flowtap.tools.dtcp_cli")


def x1() -> int:
    return _run("flowtap.tools.x1_cli")


def collector() -> int:
    return _run("flowtap.tools.collector")


def audit() -> int:
    return _run("flowtap.tools.audit_cli")


def cli() -> int:
    return _run("flowtap.tools.operator_cli")
