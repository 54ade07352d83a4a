"""Every exception flowtap raises on purpose.

- ``FlowtapError``: root.
- ``NetconfRpcError``: becomes one ``<rpc-error>``; carries exactly the fields ncclient's
  ``RPCError`` exposes (type, tag, app_tag, severity, path, message, info).
- ``NetconfRpcErrors``: several rpc-errors in one reply (error-option continue-on-error).
- ``SessionTerminated``: the NETCONF session must be closed (framing error, bad hello).
- ``CommitFailed``: a hook refused a commit in validate or prepare (mapped to an rpc-error).
- ``DtcpError``: a DTCP status line other than 200.
- ``InterceptError``: the intercept owner (:mod:`flowtap.intercept`) refused a change; nothing
  changed. Each tasking protocol maps the subclasses to its own replies:
- ``InterceptLimitError``: an owner's or the system's intercept limit, or an owner's IDs, ran out.
- ``DestinationLimitError``: an owner's or the system's content destination limit is reached.
- ``UnknownInterceptError``: a selection names an intercept ID its owner does not have.
- ``UnservableInterceptError``: the dataplane cannot serve the intercept (TTL 0, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class FlowtapError(Exception):
    """Root of flowtap's own exceptions."""


@dataclass
class NetconfRpcError(FlowtapError):
    """One RFC 6241 Appendix A rpc-error."""

    tag: str
    message: str
    type: str = "application"
    severity: str = "error"
    path: str | None = None
    app_tag: str | None = None
    info: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)


class NetconfRpcErrors(FlowtapError):
    """Several rpc-errors reported together."""

    def __init__(self, errors: list[NetconfRpcError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


class SessionTerminated(FlowtapError):
    """The session cannot continue (RFC 6242 framing error, invalid hello)."""


class CommitFailed(FlowtapError):
    """A commit hook refused the new configuration.

    ``tag`` is the NETCONF error-tag to report (operation-failed, resource-denied, ...).
    """

    def __init__(self, message: str, tag: str = "operation-failed", path: str | None = None):
        super().__init__(message)
        self.message = message
        self.tag = tag
        self.path = path


class DtcpError(FlowtapError):
    """A DTCP request answered with a non-200 status."""

    def __init__(self, status: int, reason: str | None = None, detail: str | None = None):
        super().__init__(f"{status} {reason or ''}".strip())
        self.status = status
        self.reason = reason
        self.detail = detail


# ---- the intercept owner (flowtap.intercept); the message is the protocol-neutral reason ----


class InterceptError(FlowtapError):
    """The intercept owner refused a change; nothing changed."""


class InterceptLimitError(InterceptError):
    """Adding would exceed the intercepts allowed per owner or in all (or the owner's IDs)."""


class DestinationLimitError(InterceptError):
    """Adding would exceed the content destinations allowed per owner or in all."""


class UnknownInterceptError(InterceptError):
    """A selection names, one by one, an intercept ID its owner does not have."""

    def __init__(self, intercept_id: int) -> None:
        super().__init__("unknown intercept ID")  # the ID itself is the owner's business
        self.intercept_id = intercept_id


class UnservableInterceptError(InterceptError):
    """The dataplane cannot serve this intercept (a content destination no socket can serve)."""
