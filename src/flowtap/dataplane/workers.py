"""The appliance's side of the capture workers: start them, hand them batches, wait for every
acknowledgement, relay their events, stop them.

A batch goes to every worker and :meth:`WorkerPool.run` returns once each has applied it
(:mod:`flowtap.dataplane.worker` applies it between two packets and acknowledges), so the
caller may then say the change is live. A worker that dies is started again with the whole
current state (its replacement gets the same rings, sinks and criteria); the batch in flight
is handed to it as part of that state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flowtap.dataplane import control
from flowtap.dataplane.slab import H_ANNOUNCED, Slab
from flowtap.dataplane.x3 import relay
from flowtap.errors import CaptureError

LOG = logging.getLogger(__name__)
READY_TIMEOUT = 30.0
ACK_TIMEOUT = 30.0
Batch = Sequence[tuple[control.Op, Sequence[int]]]
StateFn = Callable[[int], Batch]
EventHook = Callable[[int], None]
X3Hook = Callable[[int, str, int, bool, str], None]  # worker, X3 address, port, up, why


@dataclass(slots=True)
class _Handle:
    index: int
    process: subprocess.Popen[bytes]
    ctl: socket.socket
    events: socket.socket


class WorkerPool:
    """``count`` worker processes; all calls but the event hook come from one thread at a
    time (the dataplane's lock)."""

    def __init__(self, count: int, *, cpus: Sequence[int] | None, on_limit: EventHook,
                 state: StateFn, on_x3: X3Hook | None = None) -> None:
        """Args:
            count: number of workers.
            cpus: pin worker i to ``cpus[i % len(cpus)]`` (None: no pinning).
            on_limit: called from the event thread with a criteria id whose limit was reached.
            state: the whole current state as a batch for worker ``i`` (restart after a
                crash).
        """
        self.count = count
        self._cpus = tuple(cpus) if cpus else ()
        self._on_limit = on_limit
        self._on_x3 = on_x3
        self._state = state
        self._handles: list[_Handle] = []
        self._batch = 0
        self.slab: Slab | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._events_thread: threading.Thread | None = None
        self._closing = False
        self._acked: dict[int, int] = {}  # worker index -> newest batch it acknowledged
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []  # run_async callers
        self._loop: asyncio.AbstractEventLoop | None = None  # watching the control sockets
        self.restarts = 0
        # each worker's X3 relay inbox (receiving, sending end), kept across restarts
        self._inboxes: list[tuple[socket.socket, socket.socket]] = []

    @property
    def started(self) -> bool:
        return bool(self._handles)

    def start(self) -> None:
        """Start every worker and wait until each is ready.

        Raises:
            CaptureError: a worker could not start.
        """
        self._closing = False
        if self.count > 1 and not self._inboxes:
            self._inboxes = relay.inboxes(self.count)
        self._handles = [self._spawn(i) for i in range(self.count)]
        self._events_thread = threading.Thread(target=self._relay, name="flowtap-dp-events",
                                               daemon=True)
        self._events_thread.start()

    def _spawn(self, index: int) -> _Handle:
        ctl, ctl_child = control.pair()
        events, events_child = control.pair()
        cpu = str(self._cpus[index % len(self._cpus)]) if self._cpus else "-"
        args = [sys.executable, "-m", "flowtap.dataplane.worker", str(ctl_child.fileno()),
                str(events_child.fileno()), str(index), cpu]
        fds = [ctl_child.fileno(), events_child.fileno()]
        if self._inboxes:
            inbox = [self._inboxes[index][0].fileno(), *(s.fileno() for _, s in self._inboxes)]
            args.append(",".join(map(str, inbox)))
            fds += inbox
        try:
            process = subprocess.Popen(args, pass_fds=fds, stdin=subprocess.DEVNULL)
        finally:
            ctl_child.close()
            events_child.close()
        ctl.settimeout(READY_TIMEOUT)
        try:
            (kind, _pid), _fds = control.receive(ctl)
        except (OSError, EOFError) as exc:
            process.kill()
            process.wait()
            ctl.close()
            events.close()
            raise CaptureError("dataplane", f"capture worker {index} did not start") from exc
        ctl.settimeout(ACK_TIMEOUT)
        assert kind == "ready"
        return _Handle(index, process, ctl, events)

    def send(self, ops: Batch, slabs: Sequence[Slab] = (),
             own: Callable[[int], Batch] | None = None) -> int:
        """Hand ``ops`` to every worker, after ``own(i)``, worker i's own operations; returns
        the batch number. ``slabs`` are slabs (besides the pool's own) whose header must
        announce the batch (slab growth)."""
        self._batch += 1
        batch = self._batch
        shared = None if own else control.encode_batch(batch, ops)  # the same for every worker
        for h in self._handles:
            self._announce(h.index, batch, slabs)
            try:
                if shared is None:
                    control.send_batch(h.ctl, batch, [*own(h.index), *ops] if own else ops)
                else:
                    control.send_encoded(h.ctl, shared)
            except OSError:
                LOG.error("capture worker %d is gone; starting it again", h.index)
        return batch

    def run(self, ops: Batch, slabs: Sequence[Slab] = (),
            own: Callable[[int], Batch] | None = None) -> None:
        """:meth:`send`, then block until every worker has acknowledged."""
        batch = self.send(ops, slabs, own)
        for h in list(self._handles):
            while self._acked.get(h.index, 0) < batch:
                try:
                    self._record(control.receive(h.ctl)[0], h)
                except (OSError, EOFError):
                    self._restart(h, slabs)
        self._settle()

    async def run_async(self, ops: Batch, slabs: Sequence[Slab] = ()) -> None:
        """:meth:`send`, then wait (without blocking the event loop) until every worker has
        acknowledged."""
        batch = self.send(ops, slabs)
        if self._done(batch):
            return
        loop = asyncio.get_running_loop()
        self._watch(loop)
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.append((batch, future))
        await future

    def _done(self, batch: int) -> bool:
        return all(self._acked.get(h.index, 0) >= batch for h in self._handles)

    def _record(self, message: object, h: _Handle) -> None:
        if isinstance(message, tuple) and message[0] == "ack":
            self._acked[h.index] = max(self._acked.get(h.index, 0), int(message[1]))

    def _settle(self) -> None:
        keep = []
        for batch, future in self._waiters:
            if self._done(batch) or not self._handles:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((batch, future))
        self._waiters = keep

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop:
            return
        self._loop = loop
        for h in self._handles:
            loop.add_reader(h.ctl.fileno(), self._readable, h)

    def _unwatch(self, h: _Handle) -> None:
        if self._loop is not None:
            self._loop.remove_reader(h.ctl.fileno())

    def _readable(self, h: _Handle) -> None:
        """Event-loop callback: record every acknowledgement waiting on ``h``'s socket."""
        if self._closing or h not in self._handles:
            return  # stop() owns the sockets now
        poller = select.poll()
        poller.register(h.ctl.fileno(), select.POLLIN)
        while poller.poll(0):
            try:
                self._record(control.receive(h.ctl)[0], h)
            except (OSError, EOFError):
                self._restart(h, ())
                break
        self._settle()

    def _announce(self, index: int, batch: int, slabs: Sequence[Slab]) -> None:
        for slab in (self.slab, *slabs):
            if slab is not None:
                slab.words[slab.header(index) + H_ANNOUNCED] = batch

    def _restart(self, h: _Handle, slabs: Sequence[Slab]) -> None:
        """A worker died: start another with the whole current state (which includes what
        the failed batch was about, since the caller updated its state first)."""
        if self._closing:
            self._acked[h.index] = self._batch  # stopping: nothing more to wait for
            return
        with contextlib.suppress(OSError):
            h.process.kill()
        h.process.wait()
        self._unwatch(h)
        h.ctl.close()
        h.events.close()
        self.restarts += 1
        LOG.error("capture worker %d exited (status %s); restarting it", h.index,
                  h.process.returncode)
        fresh = self._spawn(h.index)
        self._handles[h.index] = fresh
        self._batch += 1
        batch = self._batch
        self._announce(h.index, batch, slabs)
        control.send_batch(fresh.ctl, batch, self._state(h.index))
        (kind, value), _fds = control.receive(fresh.ctl)
        if (kind, value) != ("ack", batch):
            raise CaptureError("dataplane", f"capture worker {h.index} failed to restart")
        self._acked[h.index] = batch  # its state includes every batch before
        if self._loop is not None:
            self._loop.add_reader(fresh.ctl.fileno(), self._readable, fresh)
        os.write(self._wake_w, b"x")  # the event thread watches the new socket

    def stop(self) -> None:
        """Stop every worker (each acknowledges, then exits). May be called from another
        thread than the event loop's (the appliance stops the dataplane in one)."""
        if not self._handles:
            return
        self._closing = True
        loop = self._unwatch_all()
        with contextlib.suppress(CaptureError):
            self.run([(("stop",), ())])
        for h in self._handles:
            try:
                h.process.wait(5)
            except subprocess.TimeoutExpired:
                h.process.kill()
                h.process.wait()
            h.ctl.close()
        os.write(self._wake_w, b"x")
        if self._events_thread is not None:
            self._events_thread.join()
            self._events_thread = None
        for h in self._handles:
            h.events.close()
        self._handles = []
        for pair in self._inboxes:
            for end in pair:
                end.close()
        self._inboxes = []
        if loop is not None and self._waiters:  # nobody is left to acknowledge: waiters go on
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(self._settle)

    def _unwatch_all(self) -> asyncio.AbstractEventLoop | None:
        """Stop watching the control sockets (on the loop's own thread); returns the loop."""
        loop, self._loop = self._loop, None
        if loop is None:
            return None
        fds = [h.ctl.fileno() for h in self._handles]
        done = threading.Event()

        def remove() -> None:
            for fd in fds:
                loop.remove_reader(fd)
            done.set()

        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            remove()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to remove
                loop.call_soon_threadsafe(remove)
                done.wait(2)
        return loop

    def pids(self) -> list[int]:
        return [h.process.pid for h in self._handles]

    def _relay(self) -> None:
        """Deliver the workers' limit events to ``on_limit`` and X3 link changes to ``on_x3``
        (event thread)."""
        dead: set[int] = set()
        while not self._closing:
            handles = [h for h in self._handles if h.events.fileno() not in dead]
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            by_fd = {}
            for h in handles:
                with contextlib.suppress(OSError, ValueError):
                    poller.register(h.events.fileno(), select.POLLIN)
                    by_fd[h.events.fileno()] = h
            for fd, _ev in poller.poll(1000):
                if fd == self._wake_r:
                    os.read(self._wake_r, 4096)
                    dead.clear()
                    continue
                h = by_fd[fd]
                try:
                    (kind, value), _fds = control.receive(h.events)
                except (OSError, EOFError):
                    dead.add(fd)  # until _restart replaces the handle (and wakes us)
                    continue
                if kind == "limit":
                    try:
                        self._on_limit(value)
                    except Exception:
                        LOG.exception("on_limit hook failed")
                elif kind == "x3" and self._on_x3 is not None:
                    address, port, up, why = value
                    self._on_x3(h.index, address, port, up, why)
