"""benchmarks/direct_backbones.py: a failed RecBole side makes the script exit non-zero."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_missing_recbole_venv_exits_non_zero(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "direct_backbones.py"), "--models", "mf", "--recbole-seeds", "1",
         "--recbole-python", str(tmp_path / "no-such-python"), "--out", str(tmp_path / "direct")],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "RecBole failed for mf" in proc.stderr
    assert "not found" in (tmp_path / "direct.json").read_text()
