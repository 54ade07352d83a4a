"""The control channel between the appliance and a capture worker: batches of operations.

A batch is applied by the worker as one step between two packets, so a packet is matched against
either all of it or none of it. Large batches (a flow-tap restart with 100,000 criteria) travel in
chunks; only the last one is marked final and the worker applies nothing before it has it.
File descriptors (capture rings, content destination sockets, the counter slab) ride along as
``SCM_RIGHTS``; an operation names its descriptor by position in its chunk.

The channel is a ``SOCK_SEQPACKET`` socket pair: message boundaries are kept, and each side is
the only reader of its end. Operations are plain tuples of picklable values (both ends are the
same program; nothing here crosses a trust boundary).

Operations (appliance -> worker):

``("slab", SlabSpec, fd)``        map the counter slab (copying this worker's records over)
``("rings", ((ring_id, name, fd), ...), inet6)``  read these rings from now on (a ring the
                                  worker has already, by id, is kept as it is)
``("sink", Outer, fd)``           a content destination socket
``("unsink", Outer)``             forget one (no criterion uses it any more)
``("up", Upsert)``                install or replace a criterion
``("x3tls", (cert, key, ca))``    the TLS files of X3 connections (None: X3 is off)
``("rm", criteria_id)``           remove one
``("stop",)``                     exit after acknowledging

Replies (worker -> appliance): ``("ready", pid)`` once, then ``("ack", batch)`` for each batch.
Events on a second socket pair: ``("limit", criteria_id)`` when a packet or byte limit stopped a
criterion's copies; ``("x3", (address, port, up, why))`` when the worker's TLS connection to an
X3 destination comes up or goes down (``why``: the reason it is down).
"""

from __future__ import annotations

import array
import mmap
import os
import pickle
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flowtap.dataplane.encap import Outer
from flowtap.intercept.criteria import Match

CHUNK_OPS = 2000
CHUNK_FDS = 200  # SCM_MAX_FD is 253
MAX_MESSAGE = 8 << 20
BUFFER = 16 << 20

Op = tuple[Any, ...]
_CARRIERS = frozenset({"slab", "sink", "rings"})  # operations that carry descriptors
_ANCILLARY = socket.CMSG_SPACE((CHUNK_FDS + 1) * array.array("i").itemsize)
_local = threading.local()  # each receiving thread's MAX_MESSAGE buffer


@dataclass(frozen=True, slots=True)
class X3Route:
    """Where and how an X3 criterion's copies go (``intercept.criteria.X3``, as a worker needs
    it): each PDU's fixed fields, and the TLS peers."""

    xid: bytes  # 16
    correlation: bytes  # 8
    direction: int
    peers: tuple[tuple[str, int], ...]

    def __reduce__(self) -> tuple[type[X3Route], tuple[object, ...]]:
        return X3Route, (self.xid, self.correlation, self.direction, self.peers)


@dataclass(frozen=True, slots=True)
class Upsert:
    """A criterion as a worker needs it."""

    criteria_id: int
    slot: int
    fresh: bool  # the slot is new to this criterion: zero its counters
    match: Match
    outers: tuple[Outer, ...]
    packet_limit: int | None
    byte_limit: int | None
    shim: bytes = b""  # what goes before the packet in every copy (encap.shim), made at ADD
    x3: X3Route | None = None  # X3 delivery (then ``outers`` is empty)

    def __reduce__(self) -> tuple[type[Upsert], tuple[object, ...]]:
        # pickled as its constructor's arguments: a slotted dataclass's default pickling calls
        # dataclasses.fields() on every object, most of a worker's cost per ADD
        return Upsert, (self.criteria_id, self.slot, self.fresh, self.match, self.outers,
                        self.packet_limit, self.byte_limit, self.shim, self.x3)  # fmt: skip


def pair() -> tuple[socket.socket, socket.socket]:
    """A connected SOCK_SEQPACKET pair with buffers for a whole chunk."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for s in (a, b):
        s.setsockopt(socket.SOL_SOCKET, 32, BUFFER)  # SO_SNDBUFFORCE
        s.setsockopt(socket.SOL_SOCKET, 33, BUFFER)  # SO_RCVBUFFORCE
    return a, b


def send_batch(sock: socket.socket, batch: int, ops: Sequence[tuple[Op, Sequence[int]]]) -> None:
    """Send ``ops`` (each with the descriptors it carries) as batch number ``batch``."""
    send_encoded(sock, encode_batch(batch, ops))


Encoded = list[tuple[bytes, list[int]]]
"""A batch as its messages on the wire: pickled data and the descriptors each carries."""


def encode_batch(batch: int, ops: Sequence[tuple[Op, Sequence[int]]]) -> Encoded:
    """``ops`` as the messages of batch number ``batch``: pickled once, so the same batch goes
    to every worker without being encoded again for each."""
    messages: Encoded = []
    chunk: list[Op] = []
    fds: list[int] = []
    for i, (op, carried) in enumerate(ops):
        if op[0] in _CARRIERS:
            chunk.append((*op, len(fds)))
            fds.extend(carried)
        else:
            chunk.append(op)
        last = i == len(ops) - 1
        if last or len(chunk) >= CHUNK_OPS or len(fds) >= CHUNK_FDS:
            messages.append((pickle.dumps((batch, last, chunk), pickle.HIGHEST_PROTOCOL), fds))
            chunk, fds = [], []
    if not ops:
        messages.append((pickle.dumps((batch, True, []), pickle.HIGHEST_PROTOCOL), []))
    return messages


def send_encoded(sock: socket.socket, messages: Encoded) -> None:
    for data, fds in messages:
        if fds:
            socket.send_fds(sock, [data], fds)
        else:
            sock.send(data)


def send(sock: socket.socket, message: object) -> None:
    sock.send(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))


def receive(sock: socket.socket) -> tuple[Any, list[int]]:
    """One message and the descriptors it carried.

    Raises:
        EOFError: the other end is gone.
    """
    # into this thread's buffer: socket.recv_fds allocates MAX_MESSAGE bytes per message and
    # frees them (mmap, mremap, munmap: three system calls per acknowledgement); an anonymous
    # mapping's pages are only backed once a message reaches them
    buffer: mmap.mmap | None = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = mmap.mmap(-1, MAX_MESSAGE)
    size, ancillary, _flags, _addr = sock.recvmsg_into([buffer], _ANCILLARY)
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if not size:
        for fd in fds:
            os.close(fd)
        raise EOFError("control channel closed")
    # the peer is this program's own parent or child over a private socket pair (see above)
    return pickle.loads(memoryview(buffer)[:size]), list(fds)  # noqa: S301


def receive_batch(sock: socket.socket) -> tuple[int, list[Op]]:
    """Every chunk of the next batch; descriptors replace their positions in the ops.

    Raises:
        EOFError: the other end is gone.
    """
    ops: list[Op] = []
    while True:
        (batch, final, chunk), fds = receive(sock)
        ops += [_resolve(op, fds) if op[0] in _CARRIERS else op for op in chunk]
        if final:
            return batch, ops


def _resolve(op: Op, fds: list[int]) -> Op:
    if op[0] == "rings":
        keys, inet6, base = op[1], op[2], op[3]
        return ("rings", tuple((*key, fds[base + i]) for i, key in enumerate(keys)), inet6)
    return (*op[:-1], fds[op[-1]])
