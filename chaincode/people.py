"""People in records: a person is (organisation, UID), never a UID alone.

An organisation's CA can issue a certificate for any UID, so `alice` of school-b
is not `alice` of parents. Records, index keys and event audiences name a person
as ``ORG/UID`` (neither part can hold a ``/``: organisation ids and UIDs are
checked when the network is made and users are enrolled), and every comparison
is made on that pair. The API may still show the bare UID where the role
implies the organisation.
"""

from __future__ import annotations

from typing import Protocol


class Someone(Protocol):
    """Anything that names an organisation and a UID (a caller, an identity)."""

    @property
    def org(self) -> str: ...
    @property
    def uid(self) -> str: ...


def person(org: str, uid: str) -> str:
    """The person `uid` of organisation `org`, as records and keys name them."""
    return f"{org}/{uid}"


def person_of(someone: Someone) -> str:
    return person(someone.org, someone.uid)


def uid_of(named: str) -> str:
    """The bare UID of a person, for views where the role implies the organisation."""
    return named.split("/", 1)[1]


def uids_of(people: list[str]) -> list[str]:
    return [uid_of(p) for p in people]
