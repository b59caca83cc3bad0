"""Test networks made by the same code as `healthledger network init` and `enroll`."""

from __future__ import annotations

import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from authz import provision
from authz.identity import Identity, IdentityVerifier
from authz.network import load_network

DEMO_USERS = [
    ("hospital", "dr-house", "doctor"),
    ("hospital", "dr-quinn", "doctor"),
    ("hospital", "hospital-admin", "admin"),
    ("parents", "alice", "parent"),
    ("parents", "bob", "parent"),
    ("school-a", "school-a-office", "school"),
    ("school-b", "school-b-office", "school"),
]


@dataclass(frozen=True)
class NetworkFixture:
    directory: Path

    def user(self, uid: str) -> tuple[Path, Path]:
        cert = next(self.directory.glob(f"users/*/{uid}.pem"))
        return cert, cert.with_suffix(".key")

    def identities(self) -> dict[str, Identity]:
        """Every enrolled user's Identity, by UID, as the server verifies their certificates."""
        verifier = IdentityVerifier.from_network(load_network(self.directory))
        return {
            path.stem: verifier.identify(
                x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)
            )
            for path in self.directory.glob("users/*/*.pem")
        }

    def copy(self, target: Path) -> NetworkFixture:
        """The same network in `target`, for a test that changes its files (keys, config)."""
        return NetworkFixture(Path(shutil.copytree(self.directory, target)))

    def client_context(self, uid: str | None = None) -> ssl.SSLContext:
        """What a client uses: trusts the network's TLS CA, presents the user's certificate."""
        context = ssl.create_default_context(cafile=self.directory / "tls" / "ca.pem")
        if uid is not None:
            cert, key = self.user(uid)
            context.load_cert_chain(cert, key)
        return context


def make_network(directory: Path) -> NetworkFixture:
    provision.init_network(directory)
    for org, uid, role in DEMO_USERS:
        provision.enroll(directory, org=org, uid=uid, role=role, name=uid.replace("-", " ").title())
    return NetworkFixture(directory)
