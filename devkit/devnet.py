"""`make run`'s first step: a development network with one demo user per role, made once.

Run as `python -m devkit.devnet DIR LEDGER_URL`: if DIR holds no network yet it is created
(`network init`) and demo users are enrolled, each with a PKCS#12 file for a
browser (password `healthledger`). Either way it prints where the
certificates are and a curl command that asks the server who you are.
"""

from __future__ import annotations

import shlex
import ssl
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from authz import provision
from authz.network import CONFIG_FILE, load_network

DEMO_P12_PASSWORD = "healthledger"
CRL_RENEW_AHEAD = timedelta(days=7)
DEMO_USERS = [
    ("hospital", "dr-house", "doctor", "Dr Gregory House"),
    ("parents", "alice", "parent", "Alice Martin"),
    ("parents", "bob", "parent", "Bob Martin"),
    ("school-a", "school-a-office", "school", "School A office"),
    ("school-b", "school-b-office", "school", "School B office"),
    ("hospital", "hospital-admin", "admin", "Hospital IT"),
]


def ensure_dev_network(directory: Path) -> bool:
    """Create the network and demo users unless DIR already holds a network; True if created.

    An existing network's CRLs are renewed when they are within CRL_RENEW_AHEAD of their
    next-update: the server refuses an organisation whose CRL has run out. A network made
    before data was encrypted at rest gets its channels' key-encryption key files, and one
    made before signed checkpoints its channels' log keys (missing ones only: the server
    refuses to start without them).
    """
    if (directory / CONFIG_FILE).exists():
        renew_crls_running_out(directory)
        for channel, path in provision.make_missing_kek_files(directory).made.items():
            print(f"Made the key-encryption key of channel {channel}: {path}")
        for channel, path in provision.make_missing_log_keys(directory).made.items():
            print(f"Made the log key of channel {channel}: {path}")
        return False
    provision.init_network(directory)
    for org, uid, role, name in DEMO_USERS:
        provision.enroll(
            directory, org=org, uid=uid, role=role, name=name, p12_password=DEMO_P12_PASSWORD
        )
    return True


def renew_crls_running_out(directory: Path) -> None:
    deadline = datetime.now(UTC) + CRL_RENEW_AHEAD
    for org in load_network(directory).orgs:
        crl = x509.load_pem_x509_crl(org.crl.read_bytes())
        if crl.next_update_utc is None or crl.next_update_utc < deadline:
            provision.renew_crl(directory, org=org.id)


def user_context(directory: Path, org: str, uid: str) -> ssl.SSLContext:
    """A client's TLS context: trusts the network's server CA, presents the user's certificate."""
    context = ssl.create_default_context(cafile=directory / "tls" / "ca.pem")
    user = directory / "users" / org / uid
    context.load_cert_chain(f"{user}.pem", f"{user}.key")
    return context


def describe(directory: Path, ledger_url: str) -> str:
    network = load_network(directory)
    url = f"https://{network.server.host}:{network.server.port}/graphql"
    users = "\n".join(
        f"  {role:<7} {uid:<16} {directory / 'users' / org / uid}.pem|.key|.p12"
        for org, uid, role, _ in DEMO_USERS
        if (directory / "users" / org / f"{uid}.pem").exists()
    )
    user = directory / "users" / "parents" / "alice"
    curl = " ".join(
        [
            "curl",
            f"--cert {shlex.quote(str(user))}.pem",
            f"--key {shlex.quote(str(user))}.key",
            f"--cacert {shlex.quote(str(directory / 'tls' / 'ca.pem'))}",
            "-H 'Content-Type: application/json'",
            """-d '{"query": "{ me { uid role } }"}'""",
            url,
        ]
    )
    return f"""healthledger dev network: {directory}
ledger: {ledger_url}
GraphQL API: {url}  (GraphiQL in a browser that has imported a .p12; password {DEMO_P12_PASSWORD})
demo users:
{users}
ask the server who you are (as alice, a parent):
  {curl}
watch the whole story on a throwaway network: .venv/bin/healthledger demo
"""


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m devkit.devnet NETWORK_DIR LEDGER_URL", file=sys.stderr)
        return 2
    directory = Path(argv[0]).resolve()
    if ensure_dev_network(directory):
        print(f"Created a development network with demo users in {directory}.")
    print(describe(directory, argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
