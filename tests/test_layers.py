"""Static checks: mypy is clean on src/, import-linter's contracts (.importlinter) pass, and every import of recfuse inside a
function is a lazy import of something heavy, marked ``# lazy: <why>``, never a way around an import cycle."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    tool = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if tool is None:
        pytest.fail("lint-imports is not installed (it comes with the dev extra: pip install -e '.[dev]')")
    res = subprocess.run([tool, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": str(Path(sys.executable).parent)})
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


def local_recfuse_imports(path: Path) -> list[tuple[int, str]]:
    """(line, source) of each import of a recfuse module inside a function of ``path``."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    out = []
    for func in ast.walk(ast.parse(source)):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if any(n == "recfuse" or n.startswith("recfuse.") for n in names):
                out.append((node.lineno, lines[node.lineno - 1]))
    return out


def test_every_local_import_of_recfuse_says_why_it_is_lazy():
    unmarked = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in sorted((ROOT / "src").rglob("*.py"))
                for n, line in local_recfuse_imports(p) if "# lazy:" not in line]
    assert not unmarked, "imports inside functions without a '# lazy: <why>' note:\n" + "\n".join(unmarked)


def test_the_check_finds_local_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import recfuse.io\n\ndef f():\n    from recfuse.io import fingerprint\n    import os\n")
    assert [n for n, _ in local_recfuse_imports(f)] == [4]


def test_type_checker_is_clean_on_src():
    """mypy (settings in pyproject.toml [tool.mypy]) reports nothing on src/."""
    tool = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")
    if tool is None:
        pytest.fail("mypy is not installed (it comes with the dev extra: pip install -e '.[dev]')")
    res = subprocess.run([tool], cwd=ROOT, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
