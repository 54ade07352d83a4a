"""``get-flow-tap-information``: Junos-style operational RPC for ``show services flow-tap``.

It returns the ``/ftsvc:flow-tap-state`` element that ``<get>`` returns (same provider, same
figures). The difference is what a caller without ``flow-tap`` gets. ``<get>`` leaves the state
out without comment, because a get is a read of everything the caller may see. This RPC asks
for one thing only, so it is refused with ``access-denied`` instead of answered with nothing,
and an operator is told why the command shows nothing. The refusal uses the same rule as
``<get>`` (:func:`flowtap.config.access.may_read` on the state path). It is the same whether or
not flow-tap is configured and names no permission bit (LI hierarchies never do), so it reveals
nothing of lawful intercept (LI-1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lxml import etree

from flowtap.config import access
from flowtap.errors import NetconfRpcError
from flowtap.netconf.flowtap_state import SERVICES_NS, STATE_PATH

if TYPE_CHECKING:
    from flowtap.netconf.session import Session

_STATE_TAG = f"{{{SERVICES_NS}}}flow-tap-state"


async def get_flow_tap_information(
    session: Session, op: etree._Element
) -> list[etree._Element | bytes] | None:
    for child in op:
        if isinstance(child.tag, str):
            local = etree.QName(child).localname
            raise NetconfRpcError(
                tag="unknown-element", type="protocol",
                message=f"Unsupported element {local!r} in <get-flow-tap-information>",
                info={"bad-element": local},
            )  # fmt: skip
    if not access.may_read(session.principal, STATE_PATH):
        raise NetconfRpcError(tag="access-denied", message="Access denied")
    found: list[etree._Element | bytes] = []
    for provider in session.ctx.state_providers:
        found += [e for e in provider(session.principal) if e.tag == _STATE_TAG]
    if not found:  # a server without the flow-tap service (unit tests): say so, do not fake
        raise NetconfRpcError(tag="operation-not-supported",
                              message="This server runs no flow-tap service")  # fmt: skip
    return found


HANDLERS = {"get-flow-tap-information": get_flow_tap_information}
