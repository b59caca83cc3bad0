"""How long consent lasts when no one says otherwise: shared by network.toml and the contracts.

`[consent]` in network.toml (authz.network) may change both; a contract built without
them (a test, a tool) uses these.
"""

from __future__ import annotations

# A school's permission to read a report, when the guardian approving it names no end.
REPORT_PERMISSION_DAYS = 90
# An emergency ("break-glass") access to a child's card.
EMERGENCY_MINUTES = 60
