"""Channel access from network.toml: members in, everyone else FORBIDDEN and told nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from authz.access import ChannelAccess
from authz.identity import Identity
from authz.network import load_network
from authz.provision import init_network
from authz.roles import Role
from domain.errors import ForbiddenError


def _identity(org: str, kind: str, role: Role) -> Identity:
    return Identity(uid="u", msp="M", org=org, org_kind=kind, role=role, name=None, fingerprint="f")


@pytest.fixture(scope="module")
def access(tmp_path_factory: pytest.TempPathFactory) -> ChannelAccess:
    return ChannelAccess(load_network(init_network(tmp_path_factory.mktemp("acl") / "net")))


@pytest.mark.parametrize(
    ("org", "kind", "role", "channels"),
    [
        ("hospital", "hospital", Role.DOCTOR, ["medical", "report"]),
        ("parents", "parents", Role.PARENT, ["medical", "report"]),
        ("school-a", "school", Role.SCHOOL, ["report"]),
        ("school-b", "school", Role.ADMIN, ["report"]),
    ],
)
def test_members_reach_their_channels_only(
    access: ChannelAccess, org: str, kind: str, role: Role, channels: list[str]
) -> None:
    identity = _identity(org, kind, role)
    assert [c.name for c in access.channels_for(identity)] == channels
    for name in channels:
        assert access.require_member(identity, name).name == name


def test_a_school_is_forbidden_the_medical_channel(access: ChannelAccess) -> None:
    with pytest.raises(ForbiddenError, match="no access to channel 'medical'"):
        access.require_member(_identity("school-a", "school", Role.SCHOOL), "medical")


def test_an_unknown_channel_looks_the_same_as_a_forbidden_one(access: ChannelAccess) -> None:
    with pytest.raises(ForbiddenError) as unknown:
        access.require_member(_identity("school-a", "school", Role.SCHOOL), "secret")
    assert str(unknown.value) == "Your organisation has no access to channel 'secret'."


def test_channel_access_reads_membership_from_the_file(tmp_path: Path) -> None:
    target = init_network(tmp_path / "net", ["only-school"])
    access = ChannelAccess(load_network(target))
    school = _identity("only-school", "school", Role.SCHOOL)
    assert [c.name for c in access.channels_for(school)] == ["report"]
