"""A small pool of worker processes (:mod:`flowtap.netconf.xpath_worker`) with a deadline.

libxml2 cannot be interrupted while it evaluates an expression and holds the GIL meanwhile, so
an expression that is not provably linear is evaluated in a worker process the daemon kills at
the deadline: whatever the expression, the request answers ``operation-failed`` within
``DEADLINE`` of a worker taking it, and the event loop (other sessions, DTCP, signals) never
waits for it. Rollback comparisons (difflib, quadratic in the worst case) run there too, with
``DIFF_DEADLINE``. At most ``size`` workers run at once (the machine class has two cores); further
requests queue for a free worker. A killed worker is reaped and replaced in the background so
the next request finds one ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final

from flowtap.errors import NetconfRpcError
from flowtap.netconf.xpath import XPathQuery, invalid_xpath
from flowtap.netconf.xpath_worker import LENGTH, READY

LOG = logging.getLogger(__name__)
DEADLINE: Final = 0.5  # seconds one XPath evaluation may take
DIFF_DEADLINE: Final = 5.0  # seconds one rollback comparison may take (30,000 entries: ~2 s)
_START_TIMEOUT: Final = 30.0  # a worker imports lxml and flowtap: slow only on a loaded machine


def _diff_too_long() -> NetconfRpcError:
    return NetconfRpcError(
        tag="operation-failed",
        message=f"The comparison needs more than the {DIFF_DEADLINE} s one request may use",
    )


def _too_long() -> NetconfRpcError:
    return NetconfRpcError(
        tag="operation-failed",
        message=f"The XPath filter needs more than the {DEADLINE} s one request may use; "
        "use a narrower expression",
    )


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flowtap.netconf.xpath_worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        worker = cls(proc)
        try:
            assert proc.stdout is not None
            if await asyncio.wait_for(proc.stdout.readexactly(1), _START_TIMEOUT) != READY:
                raise ConnectionError("XPath worker did not start")
        except BaseException:
            await worker.kill()
            raise
        return worker

    async def ask(self, request: dict[str, Any], payload: bytes, deadline: float) -> Any:
        """The worker's reply; raises TimeoutError, or EOF/ConnectionError when it dies."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        header = json.dumps(request | {"limit": deadline}).encode()
        self.proc.stdin.write(LENGTH.pack(len(header)) + header)
        self.proc.stdin.write(LENGTH.pack(len(payload)) + payload)
        async with asyncio.timeout(deadline):
            await self.proc.stdin.drain()
            size = LENGTH.unpack(await self.proc.stdout.readexactly(LENGTH.size))[0]
            return json.loads(await self.proc.stdout.readexactly(size))


    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.proc.wait()  # reaped: no zombie, no open pipes


def _positions(reply: Any) -> list[int]:
    if "error" in reply:
        if reply["error"] is None:
            raise NetconfRpcError(tag="operation-failed",
                                  message="The XPath filter needs too much memory")
        raise invalid_xpath(str(reply["error"]))
    return [int(position) for position in reply["positions"]]


class XPathPool:
    def __init__(self, size: int = 2, deadline: float = DEADLINE) -> None:
        self.deadline = deadline
        self._size = size
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._starting: set[asyncio.Task[None]] = set()
        self._closed = False

    def prestart(self) -> None:
        """Start one worker in the background so the first request does not wait for it."""
        if not self._closed:
            task = asyncio.get_running_loop().create_task(self._start_idle())
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _start_idle(self) -> None:
        try:
            worker = await _Worker.start()
        except (OSError, EOFError, ConnectionError, TimeoutError) as exc:
            LOG.warning("cannot start an XPath worker: %s", exc)
            return
        await self._keep(worker)

    async def _keep(self, worker: _Worker) -> None:
        """Keep a healthy worker for the next request, up to the pool's size."""
        if self._closed or len(self._idle) >= self._size:
            await worker.kill()
        else:
            self._idle.append(worker)

    async def select(self, document: bytes, query: XPathQuery) -> Sequence[int]:
        """Document-order positions of the nodes ``query`` selects in ``document``."""
        request = {"kind": "xpath", "select": query.select, "namespaces": query.namespaces}
        return _positions(await self._ask(request, document, self.deadline, _too_long))

    async def diff(self, old: list[str], new: list[str], fromfile: str, tofile: str) -> str:
        """A unified diff of two lists of lines (``operation-failed`` past ``DIFF_DEADLINE``)."""
        request = {"kind": "diff", "fromfile": fromfile, "tofile": tofile}
        reply = await self._ask(request, json.dumps([old, new]).encode(), DIFF_DEADLINE,
                                _diff_too_long)  # fmt: skip
        return str(reply["text"])

    async def _ask(self, request: dict[str, Any], payload: bytes, deadline: float,
                   too_long: Callable[[], NetconfRpcError]) -> Any:  # fmt: skip
        async with self._slots:
            if self._closed:
                raise NetconfRpcError(tag="operation-failed", message="The server is stopping")
            worker = self._idle.pop() if self._idle else await _Worker.start()
            self._busy.add(worker)
            done = False
            try:
                reply = await worker.ask(request, payload, deadline)
                done = True
                return reply
            except TimeoutError:
                raise too_long() from None
            except (EOFError, ConnectionError):  # asyncio.IncompleteReadError is an EOFError
                LOG.warning("an XPath worker ended during a request (exit status %s)",
                            worker.proc.returncode)  # fmt: skip
                raise too_long() from None
            finally:
                self._busy.discard(worker)
                if done:
                    await self._keep(worker)
                else:  # timed out, died, cancelled, or shutting down: state unknown
                    await asyncio.shield(worker.kill())
                    self.prestart()

    async def close(self) -> None:
        """Kill and reap every worker; requests still waiting fail with operation-failed."""
        self._closed = True
        starting = list(self._starting)
        for task in starting:
            task.cancel()
        await asyncio.gather(*starting, return_exceptions=True)  # each kills what it started
        workers = self._idle + list(self._busy)
        self._idle.clear()
        for worker in workers:
            await worker.kill()
