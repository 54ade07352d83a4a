"""The appliance's side of X3 delivery: the TLS files the workers use, what an X3 criterion
needs to be served, and the state of each destination's link (kept by the worker that owns
the destination, :func:`~flowtap.dataplane.x3.relay.owner_of`)."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable

from flowtap.dataplane.control import X3Route
from flowtap.dataplane.x3.relay import owner_of
from flowtap.dataplane.x3.template import correlation_bytes
from flowtap.intercept.criteria import X3, ContentDestination, Criterion


def x3_route(delivery: X3, destinations: tuple[ContentDestination, ...]) -> X3Route:
    return X3Route(delivery.xid, correlation_bytes(delivery.correlation_id), delivery.direction,
                   tuple((cd.dest_address, cd.dest_port) for cd in destinations))  # fmt: skip


class X3Delivery:
    def __init__(self) -> None:
        self.files: tuple[str, str, str] | None = None  # certificate, key, CAs
        self._lock = threading.Lock()  # link changes arrive on the pool's event thread
        self._up: dict[tuple[str, int], dict[int, tuple[bool, str]]] = {}
        self._generation = 0

    def check(self, criterion: Criterion) -> None:
        """Raises ValueError when the criterion's X3 copies could not be delivered."""
        if self.files is None:
            raise ValueError("X3 delivery needs the TLS files of services flow-tap x1")
        for cd in criterion.destinations:
            try:
                ipaddress.ip_address(cd.dest_address)
            except ValueError:
                raise ValueError(f"an X3 destination is an IP address, not "
                                 f"{cd.dest_address!r}") from None  # fmt: skip
            if not 1 <= cd.dest_port <= 65535:
                raise ValueError("an X3 destination's TCP port is 1-65535")

    def hook(self) -> Callable[[int, str, int, bool, str], None]:
        """The link-state hook of a new pool of workers: what the pool before said of its
        links is void, and what it still says while it stops (its links closing, while the
        new pool's come up) is ignored."""
        with self._lock:
            self._up.clear()
            self._generation += 1
            generation = self._generation

        def link_changed(worker: int, address: str, port: int, up: bool, why: str) -> None:
            """A worker's link to ``(address, port)`` came up or went down (event thread)."""
            with self._lock:
                if generation == self._generation:
                    self._up.setdefault((address, port), {})[worker] = (up, why)

        return link_changed

    def connected(self, address: str, port: int, workers: int) -> bool:
        """Whether the link to the destination is up (of ``workers``, its owner's)."""
        with self._lock:
            state = self._up.get((address, port), {}).get(owner_of((address, port), workers))
            return state is not None and state[0]

    def problem(self, address: str, port: int, workers: int) -> str | None:
        """Why the link to the destination is down (None: up, or not tried yet)."""
        with self._lock:
            state = self._up.get((address, port), {}).get(owner_of((address, port), workers))
            return None if state is None or state[0] else state[1] or "down"
