"""Per-connection authentication-try limit for asyncssh servers (SECURITY.md section 3.5).

asyncssh has no MaxAuthTries. One :class:`AuthTryLimiter` per SSH connection counts failed
attempts; after ``max_tries`` failures ``password_auth_supported()`` returns False, so asyncssh
stops offering password authentication and (with no method left) disconnects the client. Each
failure also sleeps a small, growing delay before the failure is reported, against brute
force. Typical use in an ``asyncssh.SSHServer``::

    def connection_made(self, conn):
        self._tries = AuthTryLimiter()

    def password_auth_supported(self):
        return self._tries.allowed

    async def validate_password(self, username, password):
        decision = await authenticator.password(config, username, password, peer)
        if decision.principal is None:
            await self._tries.failed()
        return decision.principal is not None
"""

from __future__ import annotations

import asyncio

DEFAULT_MAX_TRIES = 3
DEFAULT_BASE_DELAY = 0.2  # seconds after the first failure; doubles each time
DEFAULT_MAX_DELAY = 2.0


class AuthTryLimiter:
    """Counts authentication failures of one connection."""

    __slots__ = ("base_delay", "failures", "max_delay", "max_tries")

    def __init__(
        self,
        max_tries: int = DEFAULT_MAX_TRIES,
        base_delay: float = DEFAULT_BASE_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
    ) -> None:
        if max_tries < 1:
            raise ValueError("max_tries must be at least 1")
        self.max_tries = max_tries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.failures = 0

    @property
    def allowed(self) -> bool:
        """Whether another attempt may be offered (for ``password_auth_supported``)."""
        return self.failures < self.max_tries

    @property
    def exhausted(self) -> bool:
        return not self.allowed

    def delay(self) -> float:
        """The back-off after the current number of failures (0 before any failure)."""
        if self.failures == 0:
            return 0.0
        return float(min(self.base_delay * 2.0 ** (self.failures - 1), self.max_delay))

    def record_failure(self) -> float:
        """Count a failure without sleeping; returns the delay the caller should apply."""
        self.failures += 1
        return self.delay()

    async def failed(self) -> None:
        """Count a failure and sleep the back-off before the caller reports it."""
        delay = self.record_failure()
        if delay > 0:
            await asyncio.sleep(delay)
