"""What each program says about itself: its version, and help text without source markup.

Module docstrings double as ``--help`` descriptions; they are written in reStructuredText for
the source reader, so the markup is taken out before a terminal shows them.
"""

from __future__ import annotations

import argparse
import re
from importlib import metadata

_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")  # :func:`flowtap.audit.verify`, :mod:`~a.b`


def version() -> str:
    try:
        return metadata.version("flowtap")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def plain(doc: str | None) -> str:
    """``doc`` as a terminal should show it: no roles, no literal quotes, no ``::``."""
    if not doc:
        return ""
    text = _ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), doc)
    text = text.replace("``", "")
    return re.sub(r"(?<=\S)::$", ":", text, flags=re.MULTILINE)


def add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
