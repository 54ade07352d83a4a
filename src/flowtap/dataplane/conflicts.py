"""What in a configuration flow-tap cannot serve as asked, each with its full reason.

Rules that depend on configuration outside ``services flow-tap`` live here rather than as YANG
``must``: libyang would refuse them on every commit and ``<validate>``, by anyone, with a message
naming flow-tap (LI-1). The flow-tap hook refuses them only when the committer reads LI
configuration (:func:`flowtap.config.li_policy.strict`); for anyone else the commit goes
through and the service reports itself degraded with these reasons (flow-tap-state, LI audit
log).

Pure: configuration in, reasons out.
"""

from __future__ import annotations

from flowtap.config import model
from flowtap.errors import CommitFailed

SERVICE_PATH = "/ftsvc:services/ftsvc:flow-tap"


def interface_path(name: str, leaf: str | None = None) -> str:
    path = f"/fti:interfaces/fti:interface[fti:name='{name}']"
    return f"{path}/fti:{leaf}" if leaf else path


def configuration(config: model.Config) -> list[CommitFailed]:
    """The configuration rules of ``services flow-tap`` that involve other hierarchies, in the
    order YANG used to report them (they were ``must`` statements)."""
    ft = config.flow_tap
    if ft is None:
        return []
    found = []
    if config.dynamic_flow_capture:
        found.append(CommitFailed(
            "flow-tap and dynamic-flow-capture cannot be configured together",
            path=SERVICE_PATH))  # fmt: skip
    if ft.interface is not None:
        leaf = f"{SERVICE_PATH}/ftsvc:interface"
        # By number, as YANG compared the uint32 unit key: "sp-0/0/0.01" names unit 1.
        service_unit = config.flow_tap_unit()
        if service_unit is None:
            found.append(CommitFailed(
                "flow-tap interface names a unit that is not configured under interfaces",
                path=leaf))  # fmt: skip
        elif not service_unit[1].inet:
            found.append(CommitFailed("flow-tap interface unit has no family inet", path=leaf))
    return found


def shared_devices(captures: list[tuple[str, str]]) -> tuple[list[int], list[CommitFailed]]:
    """``(interface, device)`` pairs to capture -> the indexes of the ones that repeat a device
    (each packet would be copied twice) and one reason per repeat."""
    seen: dict[str, str] = {}
    repeats: list[int] = []
    reasons: list[CommitFailed] = []
    for index, (ifd, device) in enumerate(captures):
        if device in seen:
            repeats.append(index)
            reasons.append(CommitFailed(
                f"flow-tap: interfaces {seen[device]} and {ifd} both use host-device "
                f"{device}: every packet would be copied twice",
                tag="invalid-value", path=interface_path(ifd, "host-device")))  # fmt: skip
        else:
            seen[device] = ifd
    return repeats, reasons
