"""The network's directory for contracts: organisation kinds and enrolled users.

Users are the certificates `healthledger enroll` wrote under users/ORG/. A
lookup of an unknown UID rescans that folder (at most once a second), so users
enrolled while the server runs are found without a restart.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from .identity import fabric_attributes
from .network import NetworkConfig

RESCAN_SECONDS = 1.0


class NetworkDirectory:
    """Answers `org_kind(org)` and `user(uid) -> (org, role)`: the contracts' Directory."""

    def __init__(self, network: NetworkConfig) -> None:
        self._kinds = {org.id: org.kind for org in network.orgs}
        self._users_dir = network.directory / "users"
        self._users: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._next_scan = 0.0
        self._scan()

    def org_kind(self, org: str) -> str | None:
        return self._kinds.get(org)

    def user(self, uid: str) -> tuple[str, str] | None:
        found = self._users.get(uid)
        if found is None and time.monotonic() >= self._next_scan:
            self._scan()
            found = self._users.get(uid)
        return found

    def _scan(self) -> None:
        with self._lock:
            self._next_scan = time.monotonic() + RESCAN_SECONDS
            users: dict[str, tuple[str, str]] = {}
            for path in sorted(self._users_dir.glob("*/*.pem")):
                entry = _enrolled_user(path, self._kinds)
                if entry is not None:
                    users[entry[0]] = (entry[1], entry[2])
            self._users = users


def _enrolled_user(path: Path, kinds: dict[str, str]) -> tuple[str, str, str] | None:
    org = path.parent.name
    if org not in kinds:
        return None
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    uids = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    role = fabric_attributes(cert).get("role")
    if len(uids) != 1 or not role:
        return None
    return str(uids[0].value), org, role
