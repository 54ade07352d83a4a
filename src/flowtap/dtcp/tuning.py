"""DTCP service knobs that Junos does not expose as configuration: timeouts and destination limits.

The defaults are the production values. ``DtcpTuning.from_env()`` lets tests and benchmarks
shorten or shrink them without a configuration leaf: each field can be overridden by the
environment variable ``FLOWTAP_DTCP_<FIELD IN CAPITALS>`` (for example
``FLOWTAP_DTCP_IDLE_TIMEOUT=2``), the way the NETCONF session reads its test timeouts.

Decisions:
- ``login_timeout`` 30 s (SECURITY §3.5 suggests 30-60 s): an SSH connection that has not
  authenticated by then is closed and frees its slot (D11); so is one without an open DTCP
  channel that long after it was accepted, or ``sshd.CHANNEL_WINDOW`` after its login or after
  its channel ended (issue 13 row 2).
- ``idle_timeout`` 1800 s: an authenticated DTCP channel with no message in progress and no
  request for that long is closed, unless the user's login class sets ``idle-timeout`` (minutes
  of ``idle_minute`` seconds, shortened by tests), which then applies as it does to NETCONF.
  Criteria survive the close (they belong to the control source, not to the channel), so a
  mediation device only has to reconnect.
- ``message_timeout`` 30 s: from the first byte of a message to its empty line, however slowly
  the bytes trickle in (slowloris); then the channel is closed.
- ``max_consecutive_errors`` 10: after that many protocol errors in a row (400, 501, 505, or
  a request dropped for its HMAC) the channel is closed (D1). Refusals of well-formed requests
  (431, 550, ...) are ordinary answers and never close it.
- Criteria limits are configuration, not tuning: ``services flow-tap limits criteria`` (default
  32,768) and ``criteria-per-source`` (16,384), applied at every commit
  (:mod:`flowtap.dtcp.criteria_limits`). The defaults sit well above Junos FlowTapLite's 3,000
  per chassis, so a benchmark can hold 10,000 criteria on one session; per-source below the
  system figure so one agency cannot exhaust the table for the others (LI-9). The former
  ``FLOWTAP_DTCP_MAX_CRITERIA`` and ``FLOWTAP_DTCP_MAX_CRITERIA_PER_SOURCE`` overrides are
  refused with a pointer to the leaves, so a script still setting them fails loudly instead of
  running with the defaults.
- Mediation devices: 16 per user and 64 per system, as Junos (551 Max Content Destination
  Exceeded). A mediation device is a content destination: a Cdest-ID of one control source
  while at least one of its criteria names it.
- ``rate_window`` 60 s: ``rate-limit`` counts connections admitted within this sliding window.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

from flowtap.intercept.table import MAX_DESTINATIONS, MAX_DESTINATIONS_PER_SOURCE, RegistryLimits

ENV_PREFIX = "FLOWTAP_DTCP_"
MOVED_TO_CONFIG = {
    "FLOWTAP_DTCP_MAX_CRITERIA": "services flow-tap limits criteria",
    "FLOWTAP_DTCP_MAX_CRITERIA_PER_SOURCE": "services flow-tap limits criteria-per-source",
}


@dataclass(frozen=True, slots=True)
class DtcpTuning:
    login_timeout: float = 30.0
    idle_timeout: float = 1800.0
    idle_minute: float = 60.0
    message_timeout: float = 30.0
    max_consecutive_errors: int = 10
    max_destinations_per_source: int = MAX_DESTINATIONS_PER_SOURCE
    max_destinations: int = MAX_DESTINATIONS
    rate_window: float = 60.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not value > 0:
                raise ValueError(f"DTCP tuning {f.name} must be positive")

    def registry_limits(self) -> RegistryLimits:
        """The limits the intercept registry starts with: these content destination limits and
        the default criteria limits, which every commit (the boot's first) then sets."""
        return RegistryLimits(destinations_per_source=self.max_destinations_per_source,
                              destinations=self.max_destinations)  # fmt: skip

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DtcpTuning:
        """The defaults, with any ``FLOWTAP_DTCP_*`` override applied.

        Raises:
            ValueError: an override is not a positive number of the field's type, or names a
                limit that is now configuration.
        """
        environ = os.environ if environ is None else environ
        for name, leaf in MOVED_TO_CONFIG.items():
            if name in environ:
                raise ValueError(f"{name} is gone: configure {leaf} instead")
        values: dict[str, float | int] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            kind = int if f.type in (int, "int") else float
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise ValueError(f"{ENV_PREFIX}{f.name.upper()} must be a number") from None
        return cls(**values)  # type: ignore[arg-type]
