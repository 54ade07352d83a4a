"""The commit engine's errors as rpc-errors: the one place where a ``ConfigError`` becomes NETCONF.

The engine (:mod:`flowtap.config`) speaks no protocol; its errors already carry every field of
an RFC 6241 Appendix A rpc-error, so each maps field for field, in order, and
:func:`flowtap.netconf.replies.error_reply` writes them.
"""

from __future__ import annotations

from flowtap.errors import ConfigError, ConfigErrors, NetconfRpcError


def rpc_error(error: ConfigError) -> NetconfRpcError:
    """One engine error as one rpc-error."""
    return NetconfRpcError(
        tag=error.tag,
        message=error.message,
        type=error.type,
        severity=error.severity,
        path=error.path,
        app_tag=error.app_tag,
        info=dict(error.info),
    )


def rpc_errors(refusal: ConfigError | ConfigErrors) -> list[NetconfRpcError]:
    """The rpc-errors of one refused request: one, or several (error-option continue-on-error)."""
    if isinstance(refusal, ConfigErrors):
        return [rpc_error(error) for error in refusal.errors]
    return [rpc_error(refusal)]
