"""Paged-list cursors (api.cursors): sealed to a list, a caller and arguments, by the TLS key."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from api.cursors import CURSOR_REFUSED, CursorKey, cursor_key
from domain.errors import BadInputError

LIST = "admissionRequests"
PERSON = "school-a/school-a-office"
ARGUMENTS = {"status": "PENDING"}
POSITION = "2026-12-07T09:28:23.059433Z/admission-ec604b46fd711418b0d940aaa077f0ab"
BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _refused(
    key: CursorKey,
    cursor: str,
    *,
    list_name: str = LIST,
    person: str = PERSON,
    arguments: dict[str, str | None] | None = None,
) -> None:
    with pytest.raises(BadInputError) as refused:
        key.open(cursor, list_name, person, ARGUMENTS if arguments is None else arguments)
    assert str(refused.value) == CURSOR_REFUSED


def test_a_cursor_opens_to_its_position_for_the_same_list_caller_and_arguments() -> None:
    key = CursorKey(b"k" * 32)
    cursor = key.seal(LIST, PERSON, ARGUMENTS, POSITION)
    assert key.open(cursor, LIST, PERSON, {"status": "PENDING"}) == POSITION
    assert set(cursor) <= set(BASE64URL)
    # Arguments are compared as a mapping: the order they were named in does not matter.
    two = {"childId": "child-1", "status": None}
    assert key.open(key.seal(LIST, PERSON, two, "p"), LIST, PERSON, dict(reversed(two.items())))


def test_a_cursor_of_another_list_caller_or_arguments_is_refused_alike() -> None:
    key = CursorKey(b"k" * 32)
    cursor = key.seal(LIST, PERSON, ARGUMENTS, POSITION)
    _refused(key, cursor, list_name="reportRequests")
    _refused(key, cursor, person="school-b/school-a-office")
    _refused(key, cursor, person="school-a/someone-else")
    _refused(key, cursor, arguments={"status": "ACCEPTED"})
    _refused(key, cursor, arguments={"status": None})
    _refused(key, cursor, arguments={})
    _refused(CursorKey(b"j" * 32), cursor)


def test_a_cursor_altered_in_any_character_or_length_is_refused() -> None:
    key = CursorKey(b"k" * 32)
    cursor = key.seal(LIST, PERSON, ARGUMENTS, POSITION)
    for index, character in enumerate(cursor):
        for replacement in {BASE64URL[(BASE64URL.index(character) + 1) % 64], "=", "!"}:
            _refused(key, cursor[:index] + replacement + cursor[index + 1 :])
    for altered in (cursor[:-1], cursor + "A", cursor + "=", cursor[1:], "", "é" + cursor):
        _refused(key, altered)
    _refused(key, "A" * 10_000)
    # The position alone, or the tag alone, is not a cursor either.
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    for part in (raw[:-32], raw[-32:]):
        _refused(key, base64.urlsafe_b64encode(part).rstrip(b"=").decode())


def test_a_forged_position_with_a_tag_of_another_position_is_refused() -> None:
    key = CursorKey(b"k" * 32)
    tag = base64.urlsafe_b64decode(key.seal(LIST, PERSON, ARGUMENTS, "p-1") + "==")[-32:]
    forged = base64.urlsafe_b64encode(b"p-2" + tag).rstrip(b"=").decode()
    _refused(key, forged)


def _write_key(
    path: Path, private: ec.EllipticCurvePrivateKey, form: serialization.PrivateFormat
) -> Path:
    path.write_bytes(
        private.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption())
    )
    return path


def test_every_server_holding_the_same_tls_key_opens_the_others_cursors(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    sec1 = _write_key(
        tmp_path / "sec1.key", private, serialization.PrivateFormat.TraditionalOpenSSL
    )
    pkcs8 = _write_key(tmp_path / "pkcs8.key", private, serialization.PrivateFormat.PKCS8)
    other = _write_key(
        tmp_path / "other.key",
        ec.generate_private_key(ec.SECP256R1()),
        serialization.PrivateFormat.PKCS8,
    )
    cursor = cursor_key(sec1).seal(LIST, PERSON, ARGUMENTS, POSITION)
    assert cursor_key(pkcs8).open(cursor, LIST, PERSON, ARGUMENTS) == POSITION
    _refused(cursor_key(other), cursor)
