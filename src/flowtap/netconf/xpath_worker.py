"""The worker process: ``python -m flowtap.netconf.xpath_worker``.

It does the work whose cost a request controls and that cannot be bounded in advance, away
from the daemon's event loop, so the daemon can kill it at a deadline
(:mod:`flowtap.netconf.xpath_pool`): XPath filters that are not provably linear
(:mod:`flowtap.netconf.xpath`), on a copy of the already access-pruned data, answered with
document-order positions; and unified diffs of two rollback entries (difflib is quadratic in the
worst case), on already pruned text.

Protocol on stdin/stdout: the worker writes one byte when it is ready; each request is a
length-prefixed JSON header and a length-prefixed payload; each reply a length-prefixed JSON
object. ``{"kind": "xpath", "select", "namespaces", "limit"}`` with the data wrapper serialized
as payload answers ``{"positions": [...]}`` or ``{"error": message}`` (an invalid expression);
``{"kind": "diff", "fromfile", "tofile", "limit"}`` with a JSON ``[old_lines, new_lines]``
payload answers ``{"text": diff}``. End of input ends the worker.
"""

from __future__ import annotations

import difflib
import json
import resource
import signal
import struct
import sys
from typing import IO, Final

from lxml import etree

from flowtap.errors import NetconfRpcError
from flowtap.netconf.xpath import XPathQuery, evaluate, positions

READY: Final = b"R"
LENGTH: Final = struct.Struct("!I")
# Address space of one worker: a hostile expression building strings fails with MemoryError
# long before the machine swaps.
ADDRESS_SPACE: Final = 1 << 30
# The parent kills a worker at its deadline; if the parent cannot (it died, or is stopped),
# SIGALRM's default action ends the worker this long after the deadline.
HARD_LIMIT_GRACE: Final = 2.0


def _read(stream: IO[bytes], size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def _frame(stream: IO[bytes]) -> bytes | None:
    header = _read(stream, LENGTH.size)
    return None if header is None else _read(stream, LENGTH.unpack(header)[0])


def _diff(request: dict[str, object], payload: bytes) -> dict[str, object]:
    old, new = json.loads(payload)
    text = "".join(difflib.unified_diff(
        [line + "\n" for line in old], [line + "\n" for line in new],
        fromfile=str(request["fromfile"]), tofile=str(request["tofile"]),
    ))  # fmt: skip
    return {"text": text}


def _answer(request: dict[str, object], document: bytes) -> dict[str, object]:
    if request.get("kind") == "diff":
        return _diff(request, document)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    data = etree.fromstring(document, parser)
    raw_namespaces = request["namespaces"]
    assert isinstance(raw_namespaces, list)
    namespaces = tuple((str(prefix), str(uri)) for prefix, uri in raw_namespaces)
    query = XPathQuery(str(request["select"]), namespaces, linear=False)
    try:
        return {"positions": positions(data, evaluate(data, query))}
    except NetconfRpcError as exc:
        return {"error": exc.message}
    except MemoryError:
        return {"error": None}


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when its workers end
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(READY)
    stdout.flush()
    while (header := _frame(stdin)) is not None and (document := _frame(stdin)) is not None:
        request = json.loads(header)
        signal.setitimer(signal.ITIMER_REAL, float(request["limit"]) + HARD_LIMIT_GRACE)
        reply = json.dumps(_answer(request, document)).encode()
        signal.setitimer(signal.ITIMER_REAL, 0)
        stdout.write(LENGTH.pack(len(reply)) + reply)
        stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
