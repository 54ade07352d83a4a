"""Every exception flowtap raises on purpose.

- ``FlowtapError``: root.
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


class SessionTerminated(FlowtapError):
    """The session cannot continue (RFC 6242 framing error, invalid hello)."""


@dataclass
class ConfigError(FlowtapError):
    """The commit engine refuses a request (RFC 6241 Appendix A's error-tag vocabulary).

    ``type`` is the layer the refusal belongs to (``application`` for the data, ``protocol`` for
    how the request used the engine); ``path`` is an instance path with the modules' prefixes;
    ``info`` maps an error-info element's local name to its text (bad-element, session-id, ...).
    """

    tag: str
    message: str
    type: str = "application"
    severity: str = "error"
    path: str | None = None
    app_tag: str | None = None
    info: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)


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
