"""``flowtap-audit``: check the hash chain of an LI audit log (:func:`flowtap.audit.verify`).

Prints the verdict and the anchor to note elsewhere, never a record's content (targets stay in
the log).
"""

from __future__ import annotations

import argparse
import sys

from flowtap.about import add_version, plain
from flowtap.audit import verify


def main(argv: list[str] | None = None) -> int:
    """``flowtap-audit verify FILE [--anchor SEQ:HASH]``: exit 0 valid, 1 invalid, 2 error."""
    parser = argparse.ArgumentParser(prog="flowtap-audit", description=plain(__doc__))
    add_version(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    ver = sub.add_parser("verify", help="verify the hash chain of an audit log")
    ver.add_argument("file")
    ver.add_argument("--anchor", help="SEQ:HASH noted earlier (detects cut-off records)")
    args = parser.parse_args(argv)
    anchor = None
    if args.anchor:
        seq_text, _, digest = args.anchor.partition(":")
        if not seq_text.isdigit() or len(digest) != 64:
            parser.error("--anchor must be SEQ:SHA256HEX")
        anchor = (int(seq_text), digest.lower())
    try:
        result = verify(args.file, anchor)
    except OSError as exc:
        print(f"flowtap-audit: {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    if not result.ok:
        print(f"FAILED {args.file}: line {result.line}: {result.error}")
        return 1
    state = "closed" if result.clean_close else "not closed (in use, crashed, or cut off)"
    print(f"OK {args.file}: {result.records} records, {state}")
    print(f"anchor {result.last_seq}:{result.head}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
