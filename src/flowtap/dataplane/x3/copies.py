"""What the packet walk queues for one X3 destination during a ring block: three appends per
copy (where the packet is in the ring, its length, the route's counter base), and the route's
kind beside it, so that every X3 route to the destination shares one queue and a block costs
one flush per destination, not one per route."""

from __future__ import annotations

from collections.abc import Callable

from flowtap.dataplane.x3.template import X3Template

Peer = tuple[str, int]
Kind = tuple[int, X3Template, int]  # criteria ID, PDU template, direction
Appends = tuple[Callable[[int], None], Callable[[int], None], Callable[[object], None]]


class CopyQueue:
    __slots__ = ("addresses", "kinds", "lengths", "owners")

    def __init__(self) -> None:
        self.addresses: list[int] = []
        self.lengths: list[int] = []
        self.owners: list[object] = []
        self.kinds: list[Kind] = []

    def appends(self, kind: Kind) -> Appends:
        """The packet walk's three appends for a route of ``kind``."""
        put_owner, put_kind = self.owners.append, self.kinds.append

        def owner_and_kind(owner: object) -> None:
            put_owner(owner)
            put_kind(kind)

        return self.addresses.append, self.lengths.append, owner_and_kind

    def clear(self) -> None:
        self.addresses.clear()
        self.lengths.clear()
        self.owners.clear()
        self.kinds.clear()
