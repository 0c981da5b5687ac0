"""docs/extending.md runs as written: its code blocks (a backbone, an LLM backend, a method) are saved under
the file names their first lines give, and used the ways the page says: the CLI, the conformance tests shipped
in recfuse.testing, the Python API, a suite through the generic runner, and ``recfuse report``."""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import recfuse.method
from recfuse.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "extending.md"


def code_files() -> dict[str, str]:
    """{file name: code} of the page's Python blocks that open with ``# <name>.py``."""
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
    out = {}
    for block in blocks:
        first = block.splitlines()[0]
        m = re.fullmatch(r"# (\w+\.py)", first.strip())
        assert m, f"a Python block of {PAGE.name} does not open with '# <file>.py': {first!r}"
        out[m.group(1)] = block
    return out


@pytest.fixture
def examples(tmp_path, monkeypatch):
    """The page's files in a folder on sys.path; the method registry and imported modules restored after."""
    files = code_files()
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(recfuse.method, "_REGISTRY", dict(recfuse.method._REGISTRY))
    yield tmp_path
    for name in files:
        sys.modules.pop(name[:-3], None)


def test_the_page_has_the_three_examples():
    assert {"my_backbones.py", "my_llms.py", "my_method.py", "run_compare.py", "test_my_backbones.py",
            "test_my_llms.py"} <= set(code_files())


def test_a_new_backbone_trains_through_the_cli(examples, capsys):
    assert main(["train", "--model", "my_backbones:CoOccurrence", "--dataset", "synthetic",
                 "--out", str(examples / "runs")]) == 0
    assert "CoOccurrence" in capsys.readouterr().out or any((examples / "runs").rglob("results.json"))


def test_a_new_llm_backend_answers_through_the_cli_and_the_config(examples, capsys):
    assert main(["llm", "ask", "a film about space and aliens", "--choices", "space,romance",
                 "--backend", "my_llms:WordOverlapLLM"]) == 0
    assert "space" in capsys.readouterr().out
    from recfuse.llm.config import LLMConfig, load_llm
    llm = load_llm(LLMConfig(backend="my_llms:WordOverlapLLM", model="v1"))
    probs = llm.choice_logprobs(["space aliens"], ["space", "romance"])
    assert probs.shape == (1, 2) and probs[0, 0] > probs[0, 1]
    assert llm.fingerprint.endswith("v1")


def test_the_conformance_tests_of_the_page_pass(examples):
    """The three-line conformance classes of the page, run by pytest as a user would."""
    env = {**os.environ, "PYTHONPATH": str(examples)}
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_backbones.py",
                          "test_my_llms.py"], cwd=examples, capture_output=True, text=True, env=env, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert " passed" in res.stdout


def test_a_toy_method_runs_through_the_protocol_the_suite_runner_and_report(examples, capsys, caplog):
    """A method registered through the Method protocol: the page's Python run, a suite through the generic
    runner (CLI), and ``recfuse report`` re-rendering its folder and the suite's."""
    runpy_globals: dict = {}
    exec(compile((examples / "run_compare.py").read_text(), "run_compare.py", "exec"), runpy_globals)
    out = examples / "runs" / "compare" / "synthetic"
    assert (out / "table.md").read_text().startswith("# Backbone comparison")
    assert "compare" in recfuse.method.available_methods()

    (examples / "suite.yaml").write_text(
        "common: {dataset: synthetic, params: {epochs: 3}}\n"
        "runs:\n  - {backbones: [pop, mf], seeds: [0, 1]}\n"
        "out: suite-out\n")
    caplog.set_level(logging.INFO)
    assert main(["run", "compare-suite", "suite.yaml"]) == 0
    said = [r.getMessage() for r in caplog.records]  # where a long suite stands, in its log
    assert "run 1 of 1: synthetic" in said and "synthetic: seed 1 (2 of 2)" in said
    suite_md = (examples / "suite-out" / "suite.md").read_text()
    assert suite_md.startswith("# Backbone comparison suite") and "mf" in suite_md
    (examples / "suite-out" / "synthetic" / "table.md").unlink()
    assert main(["report", "suite-out"]) == 0
    assert (examples / "suite-out" / "synthetic" / "table.md").is_file()
    assert "wrote" in capsys.readouterr().out
