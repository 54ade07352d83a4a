"""Every exception flowtap raises on purpose.

- ``FlowtapError``: root.
- ``ErrorReport``: the fields of an RFC 6241 Appendix A error report; the base of the next two.
- ``NetconfRpcError``: a refusal only NETCONF makes (message parsing, rpc parameters, filters,
  XPath, access to an operation); becomes one ``<rpc-error>`` and carries exactly the fields
  ncclient's ``RPCError`` exposes (type, tag, app_tag, severity, path, message, info).
- ``SessionTerminated``: the NETCONF session must be closed (framing error, bad hello).
- ``ConfigError``: the commit engine (:mod:`flowtap.config`) refuses a request: an edit,
  a validation, a lock, a commit. Protocol-neutral: its tag is from RFC 6241 Appendix A's
  error-tag vocabulary (Junos' XML API uses the same words), and it carries the fields an
  rpc-error shows; :mod:`flowtap.netconf.engine_errors` alone turns it into one.
- ``ConfigErrors``: several ``ConfigError`` of one edit (error-option continue-on-error).
- ``CommitFailed``: a ``ConfigError`` raised by a commit hook refusing a configuration in
  validate or prepare (tag operation-failed unless it says otherwise).
- ``DtcpError``: a DTCP status line other than 200.
- ``FilterSyntaxError`` (400), ``ImproperFilterError`` (432), ``UnsupportedValueError`` (501),
  ``UnknownCriteriaIdError`` (431): a DTCP header value refused by its grammar; also
  ``ValueError`` (the grammar functions raise nothing else).
- ``AuditError``: the LI audit log cannot be written; the caller must not report success.
- ``BootError``: the appliance cannot start on this configuration.
- ``CaptureError``: a capture interface cannot be opened; ``SendError``: a content destination
  socket cannot be set up. Both also ``OSError``.
- ``X3Error``: bytes that are no TS 103 221-2 X2/X3 PDU (bad version, a length out of bounds or
  inconsistent, a malformed attribute), or a PDU that cannot be built; also ``ValueError``.
- ``JumpTooFar``: a BPF jump does not fit its offset field (an assembler's refusal).
- ``DtcpClientError``: the DTCP client's connection or reply stream failed.
- ``RpcFailed``: the NETCONF client got an rpc-error.
- ``ProcError``: a demo process did not start or exited early; also ``RuntimeError``.
- ``InterceptError``: the intercept owner (:mod:`flowtap.intercept`) refused a change; nothing
  changed. Each tasking protocol maps the subclasses to its own replies:
- ``InterceptLimitError``: an owner's or the system's intercept limit, or an owner's IDs, ran out.
- ``DestinationLimitError``: an owner's or the system's content destination limit is reached.
- ``UnknownInterceptError``: a selection names an intercept ID its owner does not have.
- ``UnservableInterceptError``: the dataplane cannot serve the intercept (TTL 0, ...).

Defined beside the protocol table they need, so that this module imports nothing:
``dtcp.status.DtcpRequestError`` (a ``DtcpError`` found while reading a request's headers, named
after its status's reason phrase; carries the header to echo in Error-Parameters);
``x1.codes.X1Error`` (an X1 message refused with a TS 103 221-1 error code) and its
``X1TopLevelError`` (an X1 request that cannot be read at all).

Defined elsewhere: ``netconf.framing.FramingError`` (a ``SessionTerminated`` that carries the
messages framed before the violation), and two private exceptions that never leave their module:
``dtcp.message._Reject``, ``netconf.xpath._NotLinear``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from lxml import etree


class FlowtapError(Exception):
    """Root of flowtap's own exceptions."""


@dataclass
class ErrorReport(FlowtapError):
    """The fields of an RFC 6241 Appendix A error report, which the engine's refusals and
    NETCONF's own share (and Junos' XML API reports with the same words)."""

    tag: str
    message: str
    type: str = "application"
    severity: str = "error"
    path: str | None = None
    app_tag: str | None = None
    info: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)


@dataclass
class NetconfRpcError(ErrorReport):
    """One rpc-error that only NETCONF raises (parsing, parameters, filters, XPath)."""


class SessionTerminated(FlowtapError):
    """The session cannot continue (RFC 6242 framing error, invalid hello)."""


@dataclass
class ConfigError(ErrorReport):
    """The commit engine refuses a request (RFC 6241 Appendix A's error-tag vocabulary).

    ``type`` is the layer the refusal belongs to (``application`` for the data, ``protocol`` for
    how the request used the engine); ``path`` is an instance path with the modules' prefixes;
    ``info`` maps an error-info element's local name to its text (bad-element, session-id, ...).
    """


class ConfigErrors(FlowtapError):
    """Several engine errors reported together (error-option continue-on-error)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


class CommitFailed(ConfigError):
    """A commit hook refused the new configuration (in validate or prepare).

    ``tag`` is the error-tag to report (operation-failed, resource-denied, ...).
    """

    def __init__(self, message: str, tag: str = "operation-failed", path: str | None = None):
        super().__init__(tag=tag, message=message, path=path)


class DtcpError(FlowtapError):
    """A DTCP request answered with a non-200 status."""

    def __init__(self, status: int, reason: str | None = None, detail: str | None = None):
        super().__init__(f"{status} {reason or ''}".strip())
        self.status = status
        self.reason = reason
        self.detail = detail



class FilterSyntaxError(FlowtapError, ValueError):
    """400 Bad Request."""


class ImproperFilterError(FlowtapError, ValueError):
    """432 Improper Filter Specification."""


class UnsupportedValueError(FlowtapError, ValueError):
    """501 Not Implemented."""


class UnknownCriteriaIdError(FlowtapError, ValueError):
    """431 Unknown Criteria ID; ``entry`` is the list entry that named it."""

    def __init__(self, entry: str) -> None:
        super().__init__("criteria ID out of range")
        self.entry = entry


class AuditError(FlowtapError):
    """The audit log cannot be written (the caller must not report success)."""


class BootError(FlowtapError):
    """The appliance cannot start on this configuration."""


class CaptureError(FlowtapError, OSError):
    """A capture interface cannot be opened (missing device, no privilege).

    ``interface`` is the IFL name of the capture interface and ``reason`` the cause alone.
    """

    def __init__(self, interface: str, reason: str) -> None:
        super().__init__(f"capture interface {interface}: {reason}")
        self.interface = interface
        self.reason = reason


class SendError(FlowtapError, OSError):
    """A content destination socket cannot be set up (bad address, no privilege)."""


class X3Error(FlowtapError, ValueError):
    """Not a TS 103 221-2 PDU, or one that cannot be built (see :mod:`flowtap.dataplane.x3`)."""


class JumpTooFar(FlowtapError):
    """A jump does not fit its offset field (classic BPF: 8 bits forward; eBPF: 16 bits): the
    program must be built another way."""


class DtcpClientError(FlowtapError):
    """The connection or the reply stream failed (not a non-200 status: see ``Reply``)."""


class RpcFailed(FlowtapError):
    """A NETCONF reply held rpc-errors; the message lists their error-tags."""

    def __init__(self, reply: etree._Element, tags: Sequence[str]) -> None:
        super().__init__(", ".join(tags))
        self.reply = reply


class ProcError(FlowtapError, RuntimeError):
    """A process did not start, or exited early."""


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
