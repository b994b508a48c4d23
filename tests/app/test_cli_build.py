from pathlib import Path

import pytest

from app.cli.main import main
from embedder import contract
from tests.conftest import DATA


def test_build_through_the_cli_prints_summary(tmp_path, capsys):
    src = str(DATA / "eurosat_ms" / "tif" / "SeaLake" / "*.tif")
    assert main(["build", str(tmp_path / "db"), "--source", src, "--sensor", "sentinel2-l1c-eurosat"]) == 0
    out = capsys.readouterr().out
    assert "rows written" in out and "rows/s" in out
    assert len(contract.read_table(tmp_path / "db")) == len(list(Path(src).parent.glob("*.tif")))


def test_empty_glob_exits_1_with_a_clear_message(tmp_path, capsys):
    assert main(["build", str(tmp_path / "db"), "--source", str(tmp_path / "*.tif")]) == 1
    err = capsys.readouterr().err
    assert "matches no file" in err
    assert not (tmp_path / "db").exists()


def test_unknown_sensor_exits_1(tmp_path, capsys):
    src = str(DATA / "eurosat_ms" / "tif" / "SeaLake" / "*.tif")
    assert main(["build", str(tmp_path / "db"), "--source", src, "--sensor", "sentinel-9"]) == 1
    assert "unknown sensor preset" in capsys.readouterr().err


def test_list_sensors(capsys):
    assert main(["build", "--list-sensors"]) == 0
    assert "landsat8-l1" in capsys.readouterr().out


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("build", "similar", "label", "sql", "explore", "info"):
        assert cmd in out


def test_unknown_command_exits_2():
    with pytest.raises(SystemExit) as e:
        main(["nonsense"])
    assert e.value.code == 2


def test_cluster_options_need_the_ray_engine(tmp_path, capsys):
    src = str(DATA / "eurosat_ms" / "tif" / "SeaLake" / "*.tif")
    for opt in (["--address", "auto"], ["--gpus-per-worker", "1"]):
        with pytest.raises(SystemExit, match="need --engine ray"):
            main(["build", str(tmp_path / "db"), "--source", src, *opt])
    assert not (tmp_path / "db").exists()


@pytest.mark.slow
@pytest.mark.ray
def test_build_with_the_ray_engine_through_the_cli(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.chdir(tmp_path)  # a relative database path: workers get it absolute
    src = str(DATA / "eurosat_ms" / "tif" / "SeaLake" / "*.tif")
    args = ["--source", src, "--sensor", "sentinel2-l1c-eurosat", "--model", "stats"]
    assert main(["build", "local", *args]) == 0
    assert main(["build", "ray", *args, "--engine", "ray", "--workers", "1"]) == 0
    assert "rows written" in capsys.readouterr().out
    local, ray = contract.read_table(tmp_path / "local"), contract.read_table(tmp_path / "ray")
    assert ray.sort_by("h3").equals(local.sort_by("h3"))
    m_local, m_ray = contract.read_manifest(tmp_path / "local"), contract.read_manifest(tmp_path / "ray")
    assert [f.path for f in m_ray.files()] == [f.path for f in m_local.files()]
    assert m_ray.derived and set(m_ray.derived) == set(m_local.derived)  # the index, published with it
