"""Station files, litmus.yaml and the data dir: resolution and every error path."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from pytest_litmus.config import DEFAULT_DRIVER, find_project_config, load_station_file
from pytest_litmus.errors import StationConfigError, StationNotFound, UnknownRole
from pytest_litmus.settings import load_station, resolve_data_dir


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """\
    station: bench
    instruments:
      dmm:
        resource: GPIB0::1::INSTR
"""


def test_example_station_loads_with_every_field(project: Path) -> None:
    config, data_dir = load_station("cell-7")
    assert config.id == "cell-7"
    assert config.path == project / "stations" / "cell-7.yaml"
    assert config.roles == ["dmm", "psu"]
    assert config.simulation == project / "stations" / "sims" / "cell-7.yaml"
    dmm = config.role("dmm")
    assert dmm.driver == "pytest_litmus.drivers:Dmm"
    assert dmm.open_kwargs() == {"timeout": 10000, "read_termination": "\n", "write_termination": "\n"}
    assert dmm.lock == "exclusive"
    assert data_dir == project / "home"


def test_defaults_for_optional_keys(tmp_path: Path) -> None:
    config = load_station_file(write(tmp_path / "stations" / "bench.yaml", GOOD))
    dmm = config.role("dmm")
    assert (dmm.driver, dmm.lock, dmm.timeout_ms, dmm.open_kwargs()) == (DEFAULT_DRIVER, "exclusive", None, {})
    assert config.simulation is None and config.visa_library is None and config.description == ""


@pytest.mark.parametrize(
    ("body", "key", "expected"),
    [
        ("instruments:\n  dmm:\n    resource: X\n    bogus: 1\n", "instruments.dmm.bogus", "one of the known keys"),
        (
            "instruments:\n  dmm:\n    resource: X\n    lock: sometimes\n",
            "instruments.dmm.lock",
            "one of exclusive, shared, none",
        ),
        (
            "instruments:\n  dmm:\n    resource: X\n    timeout_ms: -5\n",
            "instruments.dmm.timeout_ms",
            "positive whole number",
        ),
        (
            "instruments:\n  dmm:\n    resource: X\n    timeout_ms: 2.5\n",
            "instruments.dmm.timeout_ms",
            "positive whole number",
        ),
        ("instruments:\n  dmm:\n    driver: a.b:C\n", "instruments.dmm.resource", "(required)"),
        (
            "instruments:\n  dmm:\n    resource: X\n    driver: not a path\n",
            "instruments.dmm.driver",
            "'package.module:Class'",
        ),
        ("instruments:\n  dmm:\n    resource: X\n    options: [1]\n", "instruments.dmm.options", "mapping of pyvisa"),
        ("instruments:\n  my-dmm:\n    resource: X\n", "instruments.my-dmm", "Python identifier"),
        ("instruments:\n  measure:\n    resource: X\n", "instruments.measure", "reserved"),
        ("instruments:\n  dmm: GPIB0::1::INSTR\n", "instruments.dmm", "a mapping"),
        ("instruments: {}\n", "instruments", "non-empty mapping"),
        ("description: x\n", "instruments", "(required)"),
        ("station: other\ninstruments:\n  dmm:\n    resource: X\n", "station", "'bench' (the file name)"),
        ("simulation: nowhere.yaml\ninstruments:\n  dmm:\n    resource: X\n", "simulation", "an existing file"),
        (
            "visa_library: missing.yaml@sim\ninstruments:\n  dmm:\n    resource: X\n",
            "visa_library",
            "existing simulation file",
        ),
        ("stations: 1\ninstruments:\n  dmm:\n    resource: X\n", "stations", "one of the known keys"),
        ("- a\n- b\n", "(top level)", "a mapping"),
        ("instruments:\n  dmm:\n    resource: [unclosed\n", "(yaml)", "valid YAML"),
    ],
)
def test_every_mistake_names_file_key_and_expectation(tmp_path: Path, body: str, key: str, expected: str) -> None:
    path = write(tmp_path / "stations" / "bench.yaml", body)
    with pytest.raises(StationConfigError) as info:
        load_station_file(path)
    err = info.value
    assert err.file == str(path)
    assert err.key == key
    assert expected in err.expected
    assert str(path) in str(err) and key in str(err)


def test_yaml_error_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bench.yaml", "instruments:\n  dmm:\n    resource: [unclosed\n")
    with pytest.raises(StationConfigError, match=r"line \d+"):
        load_station_file(path)


def test_visa_library_simulation_path_is_made_absolute(tmp_path: Path) -> None:
    write(tmp_path / "stations" / "sims" / "s.yaml", "spec: '1.1'\nresources:\n  GPIB0::1::INSTR: {device: d}\n")
    path = write(
        tmp_path / "stations" / "bench.yaml",
        "visa_library: sims/s.yaml@sim\n" + textwrap.dedent(GOOD).split("\n", 1)[1],
    )
    assert load_station_file(path).visa_library == f"{tmp_path / 'stations' / 'sims' / 's.yaml'}@sim"


def test_other_visa_library_specs_pass_through(tmp_path: Path) -> None:
    path = write(
        tmp_path / "stations" / "bench.yaml", 'visa_library: "@py"\n' + textwrap.dedent(GOOD).split("\n", 1)[1]
    )
    assert load_station_file(path).visa_library == "@py"


@pytest.mark.parametrize("bad", ["../cell-7", "a/b", "a\\b", "..", "", ".hidden", "cell..7"])
def test_station_ids_that_are_not_plain_names_are_refused(project: Path, bad: str) -> None:
    with pytest.raises(StationConfigError) as info:
        load_station(bad)
    assert info.value.key == "station" and "plain station name" in str(info.value)


def test_unknown_station_lists_the_ones_that_exist(project: Path) -> None:
    write(project / "home" / "stations" / "lab-2.yaml", GOOD)
    with pytest.raises(StationNotFound) as info:
        load_station("cell-9")
    assert info.value.available == ["cell-7", "lab-2"]
    assert "cell-7, lab-2" in str(info.value) and isinstance(info.value, LookupError)


def test_project_stations_are_searched_upward_then_the_data_dir(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "pyproject.toml").touch()  # the project's root: the search goes up to here
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert load_station("cell-7")[0].path == project / "stations" / "cell-7.yaml"
    write(deep / "stations" / "cell-7.yaml", GOOD.replace("bench", "cell-7"))
    assert load_station("cell-7")[0].path == deep / "stations" / "cell-7.yaml"
    write(project / "home" / "stations" / "user-only.yaml", GOOD.replace("bench", "user-only"))
    assert load_station("user-only")[0].path == project / "home" / "stations" / "user-only.yaml"


def test_litmus_yaml_gives_default_station_and_data_dir(project: Path) -> None:
    write(project / "litmus.yaml", "default_station: cell-7\ndata_dir: var/litmus\n")
    config, data_dir = load_station(None)
    assert config.id == "cell-7"
    assert data_dir == project / "var" / "litmus"


def test_no_station_and_no_default_is_a_clear_error(project: Path) -> None:
    with pytest.raises(StationConfigError, match="default_station"):
        load_station(None)


@pytest.mark.parametrize(
    ("text", "key"),
    [("default_station: ../x\n", "default_station"), ("colour: red\n", "colour"), ("data_dir: 5\n", "data_dir")],
)
def test_litmus_yaml_errors(project: Path, text: str, key: str) -> None:
    write(project / "litmus.yaml", text)
    with pytest.raises(StationConfigError) as info:
        find_project_config()
    assert info.value.key == key and info.value.file == str(project / "litmus.yaml")


def test_data_dir_chain(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LITMUS_HOME")
    import platformdirs

    assert resolve_data_dir() == Path(platformdirs.user_data_dir("litmus"))
    monkeypatch.setenv("LITMUS_HOME", str(project / "env-home"))
    assert resolve_data_dir() == project / "env-home"
    write(project / "litmus.yaml", "data_dir: yaml-home\n")
    assert resolve_data_dir() == project / "yaml-home"
    assert resolve_data_dir(project / "explicit") == project / "explicit"


def test_unknown_role_names_station_and_roles(project: Path) -> None:
    config, _ = load_station("cell-7")
    with pytest.raises(UnknownRole) as info:
        config.role("scope")
    assert "'cell-7'" in str(info.value) and "dmm, psu" in str(info.value)
    assert isinstance(info.value, LookupError)


def test_config_errors_pickle_with_their_fields(tmp_path: Path) -> None:
    err = StationConfigError(tmp_path / "x.yaml", "instruments.dmm.lock", "one of exclusive, shared, none", "maybe")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.file, copy.key, copy.expected, copy.got, str(copy)) == (
        err.file,
        err.key,
        err.expected,
        err.got,
        str(err),
    )


# --------------------------------------------------------------------------- settings, without pytest


def test_settings_resolve_explicit_then_env_then_litmus_yaml_then_default(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_litmus.settings import resolve

    write(project / "litmus.yaml", "default_station: cell-7\n")
    s = resolve()
    assert (s.station.value, s.mock.value, s.lock_timeout.value) == ("cell-7", False, 0.0)
    assert s.sources == {
        "station": f"default_station in {project / 'litmus.yaml'}",
        "mock": "default",
        "data_dir": "LITMUS_HOME",
        "lock_timeout": "default",
        "dut": "default",
        "dut_part": "default",
        "limits": "default",
        "locks": "default",
        "fleet": "default",
    }
    monkeypatch.setenv("LITMUS_STATION", "cell-8")
    monkeypatch.setenv("LITMUS_MOCK", "yes")
    monkeypatch.setenv("LITMUS_LOCK_TIMEOUT", "none")
    s = resolve()
    assert (s.station, s.mock.value, s.lock_timeout.value) == (
        s.station.__class__("cell-8", "LITMUS_STATION"),
        True,
        None,
    )
    s = resolve({"station": ("cell-7", "station="), "mock": (False, "mock="), "lock_timeout": (2, "arg")})
    assert (s.station.value, s.mock.value, s.lock_timeout.value) == ("cell-7", False, 2.0)
    assert (s.station.source, s.mock.source) == ("station=", "mock=")


def test_the_ini_door_comes_after_the_environment_and_before_litmus_yaml(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_litmus.settings import IniFile, resolve

    write(project / "litmus.yaml", "default_station: cell-7\n")
    ini = IniFile(get={"litmus_station": "cell-8", "litmus_lock_timeout": "3"}.get, path=project / "pytest.ini")
    s = resolve(ini=ini)
    assert (s.station.value, s.station.source, s.lock_timeout.value) == ("cell-8", "ini litmus_station", 3.0)
    monkeypatch.setenv("LITMUS_STATION", "cell-9")
    assert resolve(ini=ini).station.value == "cell-9"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"LITMUS_MOCK": "maybe"},
            "environment variable LITMUS_MOCK: mock: expected 1, true, yes, on or 0, false, no, off, got 'maybe'",
        ),
        (
            {"LITMUS_LOCK_TIMEOUT": "soon"},
            "environment variable LITMUS_LOCK_TIMEOUT: lock_timeout: expected seconds >= 0",
        ),
        ({"LITMUS_STATION": "a/b"}, "environment variable LITMUS_STATION: station: expected a plain station name"),
    ],
)
def test_a_bad_value_names_its_door(
    project: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    from pytest_litmus.settings import resolve

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(StationConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        resolve()


def test_connect_takes_station_mock_and_lock_timeout_from_the_environment(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_litmus import connect

    monkeypatch.setenv("LITMUS_STATION", "cell-7")
    monkeypatch.setenv("LITMUS_MOCK", "1")
    monkeypatch.setenv("LITMUS_LOCK_TIMEOUT", "4.5")
    station = connect()
    assert (station.config.id, station.mock, station.lock_timeout) == ("cell-7", True, 4.5)
    assert connect(mock=False).mock is False  # an explicit argument wins over the environment
    monkeypatch.setenv("LITMUS_MOCK", "perhaps")
    with pytest.raises(StationConfigError, match="LITMUS_MOCK"):
        connect()


def test_connect_without_any_station_says_every_door(project: Path) -> None:
    from pytest_litmus import connect

    with pytest.raises(
        StationConfigError,
        match="station=/--station, set LITMUS_STATION, litmus_station in the ini file, or default_station",
    ):
        connect()


def test_locks_fleet_and_page_from_litmus_yaml_then_environment(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_litmus.settings import resolve

    write(
        project / "litmus.yaml",
        "locks: postgresql://lab@db/litmus\nfleet: postgres://lab@db/fleet\n"
        "page:\n  command: pytest --station {station} --dut {serial} -x\n",
    )
    s = resolve()
    assert (s.locks.value, s.fleet.value) == ("postgresql://lab@db/litmus", "postgres://lab@db/fleet")
    assert s.project is not None and s.project.page_command == "pytest --station {station} --dut {serial} -x"
    monkeypatch.setenv("LITMUS_LOCKS", "host")
    monkeypatch.setenv("LITMUS_FLEET", "postgresql://other/fleet")
    s = resolve()
    assert (s.locks, s.fleet.value) == (("host", "LITMUS_LOCKS"), "postgresql://other/fleet")


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("locks: redis://db\n", "locks", "host, or a postgresql:// URL"),
        ("locks: [host]\n", "locks", "host, or a postgresql:// URL"),
        ("fleet: host\n", "fleet", "a postgresql:// URL"),
        ("fleet: 5432\n", "fleet", "a postgresql:// URL"),
        ("page: pytest\n", "page", "a mapping with a command"),
        ("page:\n  command: pytest --dut {sn}\n", "page.command", "not {sn}"),
        ("page:\n  command: pytest --dut {serial\n", "page.command", "placeholders"),
        ("page:\n  cmd: pytest\n", "page.cmd", "known keys"),
    ],
)
def test_bad_locks_fleet_and_page_name_the_key(project: Path, text: str, key: str, expected: str) -> None:
    from pytest_litmus.settings import resolve

    write(project / "litmus.yaml", text)
    with pytest.raises(StationConfigError) as info:
        resolve()
    assert info.value.key == key and expected in info.value.expected
    assert str(project / "litmus.yaml") in str(info.value)


def test_bad_locks_from_the_environment_names_the_variable(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_litmus.settings import resolve

    monkeypatch.setenv("LITMUS_LOCKS", "nfs:/share")
    with pytest.raises(StationConfigError) as info:
        resolve()
    assert "LITMUS_LOCKS" in str(info.value) and "postgresql://" in str(info.value)
