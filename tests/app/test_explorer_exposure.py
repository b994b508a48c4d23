"""The explorer listens on localhost unless told otherwise; uploads are size-limited."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from app.cli import demo, explore
from app.limits import DEFAULT_HOST, UPLOAD_ENV
from app.logic.labelling import seeds_from_upload
from app.logic.rows import load_rows
from embedder.errors import SeedError

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "data" / "eurosat_ms" / "seeds.csv"


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    explore.add_arguments(p)
    return p.parse_args(list(argv))


def _opt(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_command_binds_localhost_and_caps_uploads(explorer_db: Path) -> None:
    cmd = explore.command(_args(str(explorer_db)))
    assert _opt(cmd, "--server.address") == DEFAULT_HOST == "127.0.0.1"
    assert _opt(cmd, "--server.maxUploadSize") == "20"
    cmd = explore.command(_args(str(explorer_db), "--host", "0.0.0.0", "--max-upload-mb", "5"))
    assert _opt(cmd, "--server.address") == "0.0.0.0" and _opt(cmd, "--server.maxUploadSize") == "5"
    assert _opt(explore.command(_args(str(explorer_db), "--address", "::1")), "--server.address") == "::1"
    p = argparse.ArgumentParser()
    demo.add_arguments(p)
    assert p.parse_args([]).host == DEFAULT_HOST


def test_open_host_warns_and_exports_upload_limit(
    explorer_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[list[str]] = []

    def fake_exec(path: str, cmd: list[str]) -> None:
        seen.append(cmd)

    monkeypatch.setattr(os, "execv", fake_exec)
    monkeypatch.delenv(UPLOAD_ENV, raising=False)
    explore.run(_args(str(explorer_db), "--host", "0.0.0.0", "--max-upload-mb", "3"))
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0" in err and "--host 127.0.0.1" in err
    assert os.environ[UPLOAD_ENV] == "3" and _opt(seen[0], "--server.address") == "0.0.0.0"
    explore.run(_args(str(explorer_db)))
    assert "warning" not in capsys.readouterr().err


def _lan_address() -> str | None:
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return str(a.address)
    return None


def test_server_listens_on_loopback_only(explorer_db: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "streamlit.log").open("w")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "app.cli.main", "explore", str(explorer_db), "--port", str(port)]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "streamlit.log").read_text()
            time.sleep(0.5)
        listening = [
            c.laddr
            for c in psutil.Process(proc.pid).net_connections("inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening and all(a.ip in ("127.0.0.1", "::1") for a in listening), listening
        lan = _lan_address()
        if lan is not None:  # the machine's network address does not reach the explorer
            with pytest.raises(OSError), socket.create_connection((lan, port), timeout=2):
                pass
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_upload_over_the_limit_is_refused(explorer_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = load_rows(explorer_db)
    real = SEEDS.read_bytes()
    seeds, outside = seeds_from_upload(rows, "seeds.csv", real)
    assert len(seeds) > 300 and outside == 0
    monkeypatch.setenv(UPLOAD_ENV, "1")
    body = real.split(b"\n", 1)[1]
    big = real + body * (2**20 // len(body) + 1)  # the real seeds repeated past 1 MB
    assert len(big) > 2**20
    with pytest.raises(
        SeedError, match=r"seeds\.csv is 1\.\d MB; the explorer accepts seed files up to 1 MB"
    ):
        seeds_from_upload(rows, "seeds.csv", big)
    assert seeds_from_upload(rows, "seeds.csv", real)[0] == seeds  # under the limit: unchanged


def test_repository_streamlit_config_keeps_the_same_limits() -> None:
    import tomllib

    from app.limits import MAX_UPLOAD_MB

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == DEFAULT_HOST and cfg["server"]["maxUploadSize"] == MAX_UPLOAD_MB
