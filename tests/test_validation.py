"""Names are one line of visible text; free text keeps line breaks and tabs, nothing else.

Control characters forge lines in logs and terminals, and the bidirectional overrides,
embeddings and isolates make a reader see a name in another order than it is stored
("Eve\u202eevil" reads as "Evelive"). Refusals name the field and never echo the value.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from api.cli import main
from authz import provision
from chaincode import validation
from domain.errors import BadInputError
from tests.api_client import (
    CREATE_REPORT,
    REGISTER_CHILD,
    REJECT_ADMISSION,
    REPORT,
    UPDATE_CARD,
    Api,
    accepted_request,
    admission,
    api_server,
    register,
    sign_and_accept,
)
from tests.networks import NetworkFixture, make_network

BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]
LINE_SEPARATORS = ["\u2028", "\u2029"]
C0 = [chr(c) for c in range(0x00, 0x20)]
C1 = [chr(c) for c in range(0x80, 0xA0)]
CONTROLS = [*C0, "\x7f", *C1]
KEPT_IN_FREE_TEXT = {"\n", "\t"}
NAMES = ["Ada Martin", "Émile Zola", "李小龙", "محمد علي", "שרה לוי", "O'Brien-Smith Jr."]


def _codepoint(char: str) -> str:
    return f"U+{ord(char):04X}"


# -- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize("char", [*CONTROLS, *BIDI, *LINE_SEPARATORS], ids=_codepoint)
def test_a_name_refuses_control_line_break_and_bidi_characters(char: str) -> None:
    with pytest.raises(BadInputError) as refused:
        validation.text(f"Eve{char}evil", "fullName")
    message = str(refused.value)
    assert message.startswith("fullName ") and "evil" not in message and char not in message


@pytest.mark.parametrize("name", NAMES)
def test_names_in_any_script_are_kept(name: str) -> None:
    assert validation.text(f"  {name} ", "fullName") == name


def test_each_entry_of_a_list_of_names_follows_the_name_rule() -> None:
    assert validation.text_list(["pollen", "nuts"], "allergies") == ["pollen", "nuts"]
    with pytest.raises(BadInputError, match=r"^Each entry of allergies "):
        validation.text_list(["pollen", "nuts\nand more"], "allergies")


# -- free text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "char",
    [c for c in CONTROLS if c not in KEPT_IN_FREE_TEXT] + BIDI + LINE_SEPARATORS,
    ids=_codepoint,
)
def test_free_text_refuses_other_control_and_bidi_characters(char: str) -> None:
    with pytest.raises(BadInputError) as refused:
        validation.free_text(f"Fit{char}for school", "conclusion")
    message = str(refused.value)
    assert message.startswith("conclusion ") and "school" not in message


def test_free_text_keeps_line_feeds_and_tabs_and_turns_crlf_into_lf() -> None:
    assert validation.free_text("Fit.\n\tNo sport\tfor a month.", "notes") == (
        "Fit.\n\tNo sport\tfor a month."
    )
    assert validation.free_text("Line one\r\nLine two\r\n", "notes") == "Line one\nLine two"
    with pytest.raises(BadInputError, match=r"^notes "):
        validation.free_text("Line one\rLine two", "notes")


def test_optional_free_text_allows_absence_only() -> None:
    assert validation.optional_free_text(None, "findings") is None
    with pytest.raises(BadInputError, match="findings must not be empty"):
        validation.optional_free_text(" \n ", "findings")


# -- enroll --name ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Ada\u202eevil", "Ada\nMartin", "Ada\x1b[2J", "A" * 65])
def test_enroll_refuses_a_display_name_that_is_not_one_short_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    target = provision.init_network(tmp_path / "net")
    args = ["enroll", str(target), "--org", "parents", "--uid", "ada", "--role", "parent"]
    assert main([*args, "--name", name]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "The name must" in err and "evil" not in err and "Martin" not in err
    assert not (target / "users" / "parents" / "ada.pem").exists()


def test_enroll_keeps_a_display_name_trimmed(tmp_path: Path) -> None:
    target = provision.init_network(tmp_path / "net")
    provision.enroll(target, org="parents", uid="ada", role="parent", name=" Ada Lovelace ")
    pem = (target / "users" / "parents" / "ada.pem").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.subject.rfc4514_string() == "CN=Ada Lovelace,UID=ada,O=parents"


# -- over the API -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("validation") / "network")


@pytest.fixture(scope="module")
def api(net: NetworkFixture) -> Iterator[Api]:
    with api_server(net, "memory://") as running:
        yield running


def _bad_input(api: Api, uid: str, query: str, variables: dict[str, object], field: str) -> None:
    error = api(uid).error(query, variables)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert field in error["message"] and "evil" not in error["message"]


@pytest.mark.parametrize("name", ["Eve\u202eevil", "Eve\u2066evil", "Eve\nevil", "Eve\x85evil"])
def test_register_child_refuses_a_name_with_bidi_or_control_characters(api: Api, name: str) -> None:
    variables = {"input": {"fullName": name, "birthDate": "2019-04-02"}}
    _bad_input(api, "alice", REGISTER_CHILD, variables, "fullName")


def test_card_notes_and_findings_keep_lines_and_allergies_stay_names(api: Api) -> None:
    child = register(api)
    sign_and_accept(api, child)
    patch = {
        "notes": "Asthma plan:\r\n\t1. inhaler\r\n\t2. call parents",
        "examinations": [{"date": "2024-05-01", "findings": "Height normal.\nVision 1.0"}],
    }
    variables = {"child": child, "version": 1, "patch": patch}
    assert api("dr-house").data(UPDATE_CARD, variables)["updateMedicalCard"]["version"] == 2
    card = api("alice").data(
        "query($c: ID!) { medicalCard(childId: $c) { notes examinations { findings } } }",
        {"c": child},
    )["medicalCard"]
    assert card["notes"] == "Asthma plan:\n\t1. inhaler\n\t2. call parents"
    assert card["examinations"][0]["findings"] == "Height normal.\nVision 1.0"
    for field, bad in (("allergies", ["pollen\nevil"]), ("notes", "ok\u202eevil")):
        again = {**variables, "version": 2, "patch": {field: bad}}
        _bad_input(api, "dr-house", UPDATE_CARD, again, field)


def test_reject_reason_and_conclusion_keep_lines_and_refuse_bidi(api: Api) -> None:
    child = register(api)
    sign_and_accept(api, child)
    refused = admission(api, child, "school-b")
    reason = {"id": refused, "reason": "Full this year.\nApply again in May.\u2067evil"}
    _bad_input(api, "school-b-office", REJECT_ADMISSION, reason, "reason")
    reason["reason"] = "Full this year.\nApply again in May."
    decided = api("school-b-office").data(REJECT_ADMISSION, reason)["rejectAdmissionRequest"]
    assert decided["reason"] == "Full this year.\nApply again in May."

    request = accepted_request(api, child)
    conclusion = {"request": request, "conclusion": "Fit for school.\u202dlive"}
    _bad_input(api, "dr-house", CREATE_REPORT, conclusion, "conclusion")
    conclusion["conclusion"] = "Fit for school.\r\nNo contact sports."
    report = api("dr-house").data(CREATE_REPORT, conclusion)["createReport"]["id"]
    content = api("alice").data(REPORT, {"id": report})["report"]["content"]
    assert content["conclusion"] == "Fit for school.\nNo contact sports."
