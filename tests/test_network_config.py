"""Reading network.toml: defaults, relative paths, and one clear sentence for each mistake."""

from __future__ import annotations

import pathlib

import pytest

from authz import provision
from authz.network import KeysConfig, NetworkConfigError, load_network, resolve_ledger_url
from encryption.keks import KekSource
from tests.test_cli_verify import NETWORK_TOML


def _write(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    (tmp_path / "network.toml").write_text(text)
    return tmp_path


def test_defaults_and_relative_paths_resolve_against_the_directory(tmp_path: pathlib.Path) -> None:
    network = load_network(_write(tmp_path, NETWORK_TOML))
    assert network.server.port == 8443 and network.server.host == "127.0.0.1"
    assert network.server.cert == tmp_path / "tls/server.pem"
    assert network.ledger.url == f"sqlite:///{tmp_path}/ledger.db"
    assert (network.ledger.batch_timeout_ms, network.ledger.max_batch) == (2.0, 500)
    assert [org.msp for org in network.orgs] == ["HospitalMSP", "ParentsMSP"]
    assert network.orgs[0].ca == tmp_path / "orgs/hospital/ca.pem"
    medical, report = network.channels
    assert network.ledger_url(medical) == network.ledger.url
    assert network.ledger_url(report) == f"sqlite:///{tmp_path}/report.db"


@pytest.mark.parametrize(
    "url",
    ["sqlite:////abs/x.db", "memory://", "redis://h:6379/0", "postgresql://u@h/db"],
)
def test_absolute_and_server_urls_are_left_alone(url: str) -> None:
    assert resolve_ledger_url(url, pathlib.Path("/base")) == url


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('kind = "hospital"', 'kind = "clinic"'), "kind 'clinic'"),
        (('members = ["hospital", "parents"]', 'members = ["hospital", "mars"]'), "unknown: mars"),
        (('msp = "ParentsMSP"', 'msp = "HospitalMSP"'), "repeated: HospitalMSP"),
        (('url = "sqlite:///ledger.db"', "url = 5"), "ledger.url has the wrong type"),
        (("[ledger]", "[ledger]\nmax_batch = 0"), "max_batch must be between 1 and 10000"),
        (('name = "report"', 'name = "medical"'), "repeated: medical"),
        (('name = "report"', 'name = "keys"'), "Channel name 'keys' must be"),
        (('name = "report"', 'name = "Report:1"'), "lower-case letters, digits and hyphens"),
        (("[ledger]", "[server]\nport = 70000\n[ledger]"), "between 1 and 65535"),
    ],
)
def test_mistakes_are_refused_with_a_sentence(
    tmp_path: pathlib.Path, change: tuple[str, str], message: str
) -> None:
    old, new = change
    with pytest.raises(NetworkConfigError, match=message):
        load_network(_write(tmp_path, NETWORK_TOML.replace(old, new, 1)))


def test_invalid_toml_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(NetworkConfigError, match="not valid TOML"):
        load_network(_write(tmp_path, "[ledger\n"))


def test_network_without_channels_is_refused(tmp_path: pathlib.Path) -> None:
    text = NETWORK_TOML.split("[[channels]]")[0]
    with pytest.raises(NetworkConfigError, match=r"\[\[channels\]\]"):
        load_network(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("[ledger]\nbatch_timeout_ms = nan", r"ledger.batch_timeout_ms must be between 0 and 1000"),
        ("[ledger]\nbatch_timeout_ms = inf", r"ledger.batch_timeout_ms must be between 0 and 1000"),
        (
            "[ledger]\nbatch_timeout_ms = 1e12",
            r"ledger.batch_timeout_ms must be between 0 and 1000",
        ),
        ("[ledger]\nbatch_timeout_ms = -1", r"ledger.batch_timeout_ms must be between 0 and 1000"),
        ("[ledger]\nmax_batch = 100000000", r"ledger.max_batch must be between 1 and 10000"),
        ("[server]\nport = 0\n[ledger]", r"server.port must be between 1 and 65535, not 0\."),
    ],
)
def test_numeric_settings_outside_their_range_are_refused(
    tmp_path: pathlib.Path, setting: str, message: str
) -> None:
    # NaN or a huge batch window once passed and then stalled every write and shutdown.
    with pytest.raises(NetworkConfigError, match=message):
        load_network(_write(tmp_path, NETWORK_TOML.replace("[ledger]", setting, 1)))


def test_numeric_settings_at_their_bounds_are_accepted(tmp_path: pathlib.Path) -> None:
    text = NETWORK_TOML.replace(
        "[ledger]", "[server]\nport = 65535\n[ledger]\nbatch_timeout_ms = 1000\nmax_batch = 1", 1
    )
    network = load_network(_write(tmp_path, text))
    assert (network.server.port, network.ledger.batch_timeout_ms, network.ledger.max_batch) == (
        65535,
        1000.0,
        1,
    )


def test_consent_terms_default_to_90_days_and_60_minutes(tmp_path: pathlib.Path) -> None:
    consent = load_network(_write(tmp_path, NETWORK_TOML)).consent
    assert (consent.report_permission_days, consent.emergency_minutes) == (90, 60)


def test_consent_terms_are_read_at_their_bounds(tmp_path: pathlib.Path) -> None:
    text = NETWORK_TOML + "\n[consent]\nreport_permission_days = 3650\nemergency_minutes = 1\n"
    consent = load_network(_write(tmp_path, text)).consent
    assert (consent.report_permission_days, consent.emergency_minutes) == (3650, 1)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            "report_permission_days = 0",
            r"consent.report_permission_days must be between 1 and 3650",
        ),
        (
            "report_permission_days = 3651",
            r"consent.report_permission_days must be between 1 and 3650",
        ),
        ("report_permission_days = 1.5", r"consent.report_permission_days has the wrong type"),
        ("emergency_minutes = 0", r"consent.emergency_minutes must be between 1 and 1440"),
        ("emergency_minutes = 1441", r"consent.emergency_minutes must be between 1 and 1440"),
        ('emergency_minutes = "60"', r"consent.emergency_minutes has the wrong type"),
        ("emergency_minutes = true", r"consent.emergency_minutes has the wrong type"),
    ],
)
def test_consent_terms_outside_their_range_are_refused(
    tmp_path: pathlib.Path, setting: str, message: str
) -> None:
    with pytest.raises(NetworkConfigError, match=message):
        load_network(_write(tmp_path, f"{NETWORK_TOML}\n[consent]\n{setting}\n"))


def test_a_new_network_states_its_consent_terms(tmp_path: pathlib.Path) -> None:
    provision.init_network(tmp_path / "network")
    assert "[consent]" in (tmp_path / "network" / "network.toml").read_text()
    consent = load_network(tmp_path / "network").consent
    assert (consent.report_permission_days, consent.emergency_minutes) == (90, 60)


MEDICAL = 'name = "medical"\nmembers = ["hospital", "parents"]\n'


def _with_keys(tmp_path: pathlib.Path, keys: str) -> pathlib.Path:
    """NETWORK_TOML with `keys` as the medical channel's [channels.keys] table."""
    return _write(tmp_path, NETWORK_TOML.replace(MEDICAL, f"{MEDICAL}[channels.keys]\n{keys}\n"))


def test_keys_default_to_the_ledger_and_a_kek_file_per_channel(tmp_path: pathlib.Path) -> None:
    network = load_network(_write(tmp_path, NETWORK_TOML))
    assert network.channel("medical").keys == KeysConfig(
        url=None, kek_file=tmp_path / "keys/medical.kek", kek_env=None
    )
    assert network.kek_source("report") == KekSource("report", path=tmp_path / "keys/report.kek")
    # The key store is the channel's own ledger, or serve's --ledger when given.
    assert network.key_store_url("medical") == (network.ledger.url, True)
    assert network.key_store_url("report") == (f"sqlite:///{tmp_path}/report.db", True)
    assert network.key_store_url("report", "memory://") == ("memory://", True)


def test_keys_table_names_a_key_store_and_a_kek_file(tmp_path: pathlib.Path) -> None:
    network = load_network(
        _with_keys(tmp_path, 'url = "sqlite:///keys.db"\nkek_file = "secrets/medical.b64"')
    )
    keys = network.channel("medical").keys
    assert keys == KeysConfig(
        url=f"sqlite:///{tmp_path}/keys.db", kek_file=tmp_path / "secrets/medical.b64", kek_env=None
    )
    assert network.kek_source("medical").path == tmp_path / "secrets/medical.b64"
    # A key store of its own is not the ledger's database, whatever --ledger says.
    assert network.key_store_url("medical") == (f"sqlite:///{tmp_path}/keys.db", False)
    assert network.key_store_url("medical", "memory://") == (keys.url, False)
    # The other channel keeps the defaults.
    assert network.channel("report").keys.kek_file == tmp_path / "keys/report.kek"


def test_keys_table_names_an_absolute_kek_file_or_a_variable(tmp_path: pathlib.Path) -> None:
    network = load_network(_with_keys(tmp_path, 'kek_file = "/run/secrets/medical.kek"'))
    assert network.kek_source("medical").path == pathlib.Path("/run/secrets/medical.kek")
    network = load_network(_with_keys(tmp_path, 'kek_env = "MEDICAL_KEK"'))
    assert network.channel("medical").keys == KeysConfig(
        url=None, kek_file=None, kek_env="MEDICAL_KEK"
    )
    assert network.kek_source("medical") == KekSource("medical", env="MEDICAL_KEK")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ('kek_file = "k.kek"\nkek_env = "K"', "gives both kek_file and kek_env"),
        ('kek-env = "K"', r"unknown settings: kek-env \(known: kek_env, kek_file, url\)"),
        ("kek_env = 5", r"channels\[medical\].keys.kek_env has the wrong type"),
        ('kek_env = ""', r"channels\[medical\].keys.kek_env has the wrong type or is empty"),
        ('kek_env = "MY KEK"', "must name an environment variable"),
        ("kek_file = true", r"channels\[medical\].keys.kek_file has the wrong type"),
        ('kek_file = ""', r"channels\[medical\].keys.kek_file must name a file"),
        ("url = 5", r"channels\[medical\].keys.url has the wrong type"),
        ('url = ""', r"channels\[medical\].keys.url has the wrong type or is empty"),
    ],
)
def test_keys_mistakes_are_refused_with_a_sentence(
    tmp_path: pathlib.Path, keys: str, message: str
) -> None:
    with pytest.raises(NetworkConfigError, match=message):
        load_network(_with_keys(tmp_path, keys))


def test_keys_that_are_not_a_table_are_refused(tmp_path: pathlib.Path) -> None:
    text = NETWORK_TOML.replace(MEDICAL, f'{MEDICAL}keys = "keys/medical.kek"\n')
    with pytest.raises(NetworkConfigError, match=r"channels\[medical\].keys must be a table"):
        load_network(_write(tmp_path, text))
