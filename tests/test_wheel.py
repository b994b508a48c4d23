"""The built wheel works outside the checkout: package data (checkpoint, presets) ships inside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHIPS = sorted((ROOT / "data" / "eurosat_ms" / "tif").glob("*/*_1[1-3].tif"))


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    drop = ("PYTHONPATH", "EARTHVEC_DATA", "EARTHVEC_MM_WEIGHTS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
          "-w", str(wheels)], tmp_path, env)  # fmt: skip
    (wheel,) = wheels.glob("earthvec-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("embedder/weights/earthvec-mm.pt", "embedder/sensors.json", "embedder/globe/layers.json",
                    "embedder/globe/igbp.csv", "embedder/tex/earthvec-tex.npz", "app/streamlit_app.py",
                    "bench/run.py",
                    "embedder/importers/products.json",
                    "embedder/contract/stac_embeddings_v0.0.1.json"):  # fmt: skip
        assert shipped in names, f"{shipped} is not in the wheel"

    # a fresh venv sees the checkout venv's dependencies (a .pth line) but not the checkout itself
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    py = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([str(py), "-c", purelib], tmp_path, env).strip())
    (site / "_earthvec_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(py)]
    _run([*pip, "install", "--no-deps", "-q", str(wheel)], tmp_path, env)
    where = _run([str(py), "-c", "import embedder, index, app; print(embedder.__file__)"], tmp_path, env)
    assert str(site) in where and str(ROOT) not in where

    earthvec = str(venv / "bin" / "earthvec")
    work = tmp_path / "elsewhere"
    work.mkdir()
    assert len(CHIPS) >= 10
    sources = ["--sensor", "sentinel2-l1c-eurosat", *(a for c in CHIPS for a in ("--source", str(c)))]
    _run([earthvec, "build", "db", "--model", "stats", *sources], work, env)
    info = json.loads(_run([earthvec, "info", "db", "--format", "json"], work, env))
    assert str(len(CHIPS)) in json.dumps(info)
    first = _run([str(py), "-c", "from embedder import contract; import sys; "
                  "t = contract.read_table('db', ['h3']); print(format(t.column(0)[0].as_py(), 'x'))"],
                 work, env).strip()  # fmt: skip
    similar = [earthvec, "similar", "db", "--cell", first, "-k", "3", "--format", "json"]
    hits = json.loads(_run(similar, work, env))
    assert len(hits) == 3
    # the shipped checkpoint is found inside the installed package
    code = "from embedder.model.checkpoint import default_checkpoint; print(default_checkpoint())"
    ck = _run([str(py), "-c", code], work, env)
    assert str(site) in ck
    # the default model (earthvec-tex) is package data too
    _run([earthvec, "build", "db_tex", *sources], work, env)
    assert "earthvec-tex" in _run([earthvec, "info", "db_tex", "--format", "json"], work, env)
    # sample data is found through $EARTHVEC_DATA (or --data), never through the package's place
    load = "from embedder.model.data import load_eurosat; print(len(load_eurosat().labels))"
    n_chips = len((ROOT / "data" / "eurosat_ms" / "manifest.csv").read_text().splitlines()) - 1
    assert int(_run([str(py), "-c", load], work, {**env, "EARTHVEC_DATA": str(ROOT / "data")})) == n_chips
    lost = subprocess.run([str(py), "-c", load], cwd=work, env=env, capture_output=True, text=True)
    assert lost.returncode != 0 and "EARTHVEC_DATA" in lost.stderr and "InputNotFoundError" in lost.stderr
