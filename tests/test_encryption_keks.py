"""Key-encryption keys: their text and id, KEK files and variables, and rotating a file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from pathlib import Path

import pytest

from encryption import (
    Kek,
    KekError,
    KekSource,
    begin_rotation,
    finish_rotation,
    write_kek_file,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _source(tmp_path: Path) -> KekSource:
    return KekSource("medical", path=tmp_path / "keys" / "medical.kek")


def _written(tmp_path: Path) -> tuple[KekSource, Kek]:
    source = _source(tmp_path)
    assert source.path is not None
    kek = Kek.generate()
    write_kek_file(source.path, kek)
    return source, kek


def _write_text(path: Path, text: str, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


# --- the key and its id -------------------------------------------------------------------


def test_id_is_stable_names_the_key_and_reveals_nothing_of_it() -> None:
    kek = Kek.generate()
    assert len(kek.key) == 32
    assert len(kek.id) == 16 and all(c in "0123456789abcdef" for c in kek.id)
    again = Kek.from_text(kek.to_text(), "channel medical: its key-encryption key test")
    assert again == kek and again.id == kek.id
    expected = hmac.new(kek.key, b"healthledger key-encryption key id", hashlib.sha256)
    assert kek.id == expected.hexdigest()[:16]
    # Not the key nor any part of it in its usual spellings.
    assert kek.id not in kek.key.hex()
    assert kek.id not in hashlib.sha256(kek.key).hexdigest()
    assert kek.to_text() not in repr(kek) and kek.key.hex() not in repr(kek)
    assert Kek.generate().id != kek.id


def test_text_is_base64_of_32_bytes_and_trailing_whitespace_is_ignored() -> None:
    kek = Kek.generate()
    text = kek.to_text()
    assert len(text) == 44 and base64.b64decode(text) == kek.key
    assert Kek.from_text(text + " \n\t\n", "here") == kek


def test_bad_text_is_refused_naming_where_and_not_the_text() -> None:
    where = "channel medical: its key-encryption key keys/medical.kek"
    with pytest.raises(
        KekError, match=r"^channel medical: .*keys/medical\.kek is not valid base64"
    ):
        Kek.from_text("not base64 at all!", where)
    short = base64.b64encode(b"\x01" * 16).decode()
    with pytest.raises(KekError, match=r"keys/medical\.kek holds 16 bytes") as refused:
        Kek.from_text(short, where)
    assert short not in str(refused.value)


def test_an_id_that_does_not_name_the_key_is_refused() -> None:
    kek = Kek.generate()
    with pytest.raises(ValueError, match="does not name"):
        Kek(Kek.generate().id, kek.key)
    with pytest.raises(ValueError, match="32 bytes"):
        Kek.from_key(b"short")


# --- files and variables ------------------------------------------------------------------


def test_write_kek_file_is_owner_only_in_an_owner_only_directory(tmp_path: Path) -> None:
    source, kek = _written(tmp_path)
    assert source.path is not None
    assert _mode(source.path) == 0o600
    assert _mode(source.path.parent) == 0o700
    assert source.path.read_text() == kek.to_text() + "\n"
    assert source.load() == [kek]
    assert sorted(p.name for p in source.path.parent.iterdir()) == ["medical.kek"]


def test_write_kek_file_keeps_an_existing_directory_as_it_is(tmp_path: Path) -> None:
    directory = tmp_path / "existing"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    write_kek_file(directory / "report.kek", Kek.generate())
    assert _mode(directory) == 0o755
    assert _mode(directory / "report.kek") == 0o600


def test_write_kek_file_never_overwrites(tmp_path: Path) -> None:
    source, kek = _written(tmp_path)
    assert source.path is not None
    with pytest.raises(KekError, match="exists already"):
        write_kek_file(source.path, Kek.generate())
    assert source.load() == [kek]
    assert sorted(p.name for p in source.path.parent.iterdir()) == ["medical.kek"]


def test_a_missing_file_is_refused_naming_channel_and_path(tmp_path: Path) -> None:
    source = _source(tmp_path)
    with pytest.raises(KekError) as refused:
        source.load()
    assert str(refused.value) == (
        f"channel medical: its key-encryption key {source.path} is missing."
    )


def test_a_file_of_bad_base64_or_wrong_length_is_refused(tmp_path: Path) -> None:
    source = _source(tmp_path)
    assert source.path is not None
    _write_text(source.path, "@@@@ not a key @@@@\n")
    with pytest.raises(KekError, match=r"^channel medical: .*medical\.kek is not valid base64"):
        source.load()
    source.path.unlink()
    _write_text(source.path, base64.b64encode(b"k" * 31).decode() + "\n")
    with pytest.raises(KekError, match=r"^channel medical: .*medical\.kek holds 31 bytes"):
        source.load()
    source.path.unlink()
    _write_text(source.path, "é" * 10)
    with pytest.raises(KekError, match=r"^channel medical: .*not valid base64"):
        source.load()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    source, kek = _written(tmp_path)
    assert source.path is not None
    os.chmod(source.path, mode)
    with pytest.raises(KekError) as refused:
        source.load()
    message = str(refused.value)
    assert message.startswith("channel medical: ")
    assert str(source.path) in message
    assert message.endswith("must be readable by its owner only (chmod 600).")
    assert kek.to_text() not in message


def test_a_directory_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    source = _source(tmp_path)
    assert source.path is not None
    source.path.mkdir(parents=True)
    with pytest.raises(KekError, match=r"^channel medical: "):
        source.load()


def test_env_source(monkeypatch: pytest.MonkeyPatch) -> None:
    kek = Kek.generate()
    source = KekSource("report", env="HL_TEST_REPORT_KEK")
    assert source.describe() == "$HL_TEST_REPORT_KEK"
    monkeypatch.setenv("HL_TEST_REPORT_KEK", kek.to_text() + "\n")
    assert source.load() == [kek]
    monkeypatch.setenv("HL_TEST_REPORT_KEK", "short")
    with pytest.raises(KekError, match=r"^channel report: .*\$HL_TEST_REPORT_KEK is not valid"):
        source.load()
    monkeypatch.delenv("HL_TEST_REPORT_KEK")
    with pytest.raises(
        KekError, match=r"^channel report: .*\$HL_TEST_REPORT_KEK, which is not set"
    ):
        source.load()


def test_a_source_is_a_file_or_a_variable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        KekSource("medical")
    with pytest.raises(ValueError, match="exactly one"):
        KekSource("medical", path=tmp_path / "k", env="K")
    assert KekSource("medical", path=Path("keys/medical.kek")).describe() == "keys/medical.kek"


# --- rotation -----------------------------------------------------------------------------


def test_rotation_writes_next_then_swaps_and_keeps_the_old_key(tmp_path: Path) -> None:
    source, old = _written(tmp_path)
    assert source.path is not None
    current, new = begin_rotation(source)
    assert current == old and new != old
    assert _mode(source.next_path) == 0o600
    assert Kek.from_text(source.next_path.read_text(), "test") == new
    assert source.load() == [old, new]  # both, while the rotation is under way

    kept = finish_rotation(source, old)
    assert kept == tmp_path / "keys" / f"medical.kek.{old.id}.old"
    assert source.load() == [new]
    assert not source.next_path.exists()
    assert Kek.from_text(kept.read_text(), "test") == old
    assert _mode(kept) == 0o600 and _mode(source.path) == 0o600
    assert sorted(p.name for p in source.path.parent.iterdir()) == [
        "medical.kek",
        f"medical.kek.{old.id}.old",
    ]
    # Finishing again finds it done; the next rotation starts from the new key.
    assert finish_rotation(source, old) == kept
    assert begin_rotation(source)[0] == new


def test_an_interrupted_rotation_resumes_with_the_same_new_key(tmp_path: Path) -> None:
    source, old = _written(tmp_path)
    _, new = begin_rotation(source)
    assert begin_rotation(source) == (old, new)


def test_finish_resumes_after_a_crash_between_its_steps(tmp_path: Path) -> None:
    source, old = _written(tmp_path)
    assert source.path is not None
    _, new = begin_rotation(source)
    # A crash after the old key was linked to .old and before .next replaced the file.
    os.link(source.path, source.old_path(old))
    assert source.load() == [old, new]
    assert finish_rotation(source, old) == source.old_path(old)
    assert source.load() == [new]


def test_only_next_left_is_still_loaded(tmp_path: Path) -> None:
    source, _ = _written(tmp_path)
    assert source.path is not None
    _, new = begin_rotation(source)
    source.path.unlink()
    assert source.load() == [new]


def test_finish_refuses_without_a_rotation_or_with_the_wrong_old_key(tmp_path: Path) -> None:
    source, old = _written(tmp_path)
    with pytest.raises(KekError, match=r"^channel medical: no rotation .* under way"):
        finish_rotation(source, old)
    begin_rotation(source)
    with pytest.raises(KekError, match="is not the key-encryption key"):
        finish_rotation(source, Kek.generate())
    assert source.load()[0] == old


def test_begin_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KekError, match=r"^channel medical: .*medical\.kek is missing"):
        begin_rotation(_source(tmp_path))


def test_a_next_file_open_to_others_is_refused(tmp_path: Path) -> None:
    source, _ = _written(tmp_path)
    begin_rotation(source)
    os.chmod(source.next_path, 0o644)
    with pytest.raises(KekError, match=r"medical\.kek\.next must be readable by its owner only"):
        source.load()


def test_an_env_source_is_not_rotated_here(monkeypatch: pytest.MonkeyPatch) -> None:
    kek = Kek.generate()
    monkeypatch.setenv("HL_TEST_MEDICAL_KEK", kek.to_text())
    source = KekSource("medical", env="HL_TEST_MEDICAL_KEK")
    for attempt in (lambda: begin_rotation(source), lambda: finish_rotation(source, kek)):
        with pytest.raises(KekError) as refused:
            attempt()
        message = str(refused.value)
        assert message.startswith("channel medical: its key-encryption key comes from ")
        assert "$HL_TEST_MEDICAL_KEK" in message and "secrets manager" in message
        assert kek.to_text() not in message
