"""Layer rules: index and app import without torch (and builds without Ray); layers only call downward."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_index_and_app_import_without_torch():
    code = (
        "import sys, importlib, pkgutil\n"
        "import index, app, app.cli.main, embedder.contract, embedder.build, embedder.globe.build\n"
        "import embedder.runner, embedder.ray_runner\n"
        "for pkg in (index, app):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        if m.name.startswith(('app.pages', 'app.streamlit_app')):\n"
        "            continue\n"
        "        importlib.import_module(m.name)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'ray' not in sys.modules, 'ray was imported (only --engine ray may import it)'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_layers_call_downward_only():
    bad = []
    for path in (ROOT / "embedder").rglob("*.py"):
        text = path.read_text()
        if "from index" in text or "import index" in text or "from app" in text or "import app" in text:
            bad.append(str(path))
    for path in (ROOT / "index").rglob("*.py"):
        text = path.read_text()
        if "from app" in text or "import app" in text or "import torch" in text:
            bad.append(str(path))
    assert not bad, f"upward imports in {bad}"


MAX_LINES = 400
BEING_SPLIT: set[str] = set()
"""Rooms over the limit whose split is under way on another branch (remove once merged)."""


def test_every_room_holds_under_400_lines():
    over = {
        p.relative_to(ROOT).as_posix()
        for pkg in ("embedder", "index", "app")
        for p in (ROOT / pkg).rglob("*.py")
        if len(p.read_text().splitlines()) > MAX_LINES
    }
    assert over <= BEING_SPLIT, f"files over {MAX_LINES} lines: {sorted(over - BEING_SPLIT)}"
