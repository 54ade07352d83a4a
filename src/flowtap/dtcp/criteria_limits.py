"""``services flow-tap limits`` as a commit hook: the criteria limits the registry enforces.

- Every commit sets them, the boot's first included, so the limits in force are always the
  running configuration's; without ``services flow-tap`` they are the YANG defaults (no criterion
  exists then anyway).
- Nothing to refuse: YANG checks the ranges and that ``criteria-per-source`` does not exceed
  ``criteria``. A limit lowered below what is installed removes no criterion (a commit never
  ends a warrant's tap); ADDs get 550 until enough criteria have gone.
- Applied in commit, not prepare, so an aborted commit changes nothing. The appliance adds this
  hook first: its commit runs right after running is written, with no await before it, so no
  DTCP request is served under the previous limits once the commit has succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowtap.config import model
from flowtap.intercept.table import CriteriaTable


@dataclass(frozen=True, slots=True)
class CriteriaLimits:
    """The criteria limits of one configuration (the prepared handle of this hook)."""

    total: int = model.DEFAULT_CRITERIA_LIMIT
    per_source: int = model.DEFAULT_CRITERIA_PER_SOURCE_LIMIT

    @classmethod
    def of(cls, config: model.Config) -> CriteriaLimits:
        flow_tap = config.flow_tap
        if flow_tap is None:
            return cls()
        return cls(flow_tap.criteria_limit, flow_tap.criteria_per_source_limit)


class CriteriaLimitsHook:
    """Commit hook ``flow-tap-limits``: hands the configured limits to the criteria table."""

    name = "flow-tap-limits"

    def __init__(self, table: CriteriaTable) -> None:
        self.table = table

    def validate(self, old: model.Config, new: model.Config) -> None:
        """Nothing to refuse (see the module docstring)."""

    async def prepare(self, old: model.Config, new: model.Config) -> CriteriaLimits:
        return CriteriaLimits.of(new)

    async def commit(self, handle: CriteriaLimits) -> None:
        self.table.set_criteria_limits(total=handle.total, per_source=handle.per_source)

    async def abort(self, handle: CriteriaLimits) -> None:
        """Nothing was allocated."""
