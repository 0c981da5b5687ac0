"""Every suite file in configs/ loads: its method, its options and its axes are known (a misspelt option in a
suite that runs for hours must fail at once, and here, not when someone starts it)."""

from pathlib import Path

import pytest
import yaml

from recfuse.runner import load_method_suite

CONFIGS = Path(__file__).parents[1] / "configs"
SUITES = sorted(p.name for p in CONFIGS.glob("*.yaml") if "runs" in (yaml.safe_load(p.read_text()) or {}))


def test_the_committed_suites_are_found():
    assert {"llama4rec_ml100k_suite.yaml", "llama4rec_ml100k_scaling.yaml", "llama4rec_ml100k_lora_dropout.yaml",
            "reclm_ml100k_suite.yaml"} <= set(SUITES)


@pytest.mark.parametrize("name", SUITES)
def test_a_committed_suite_loads(name):
    method, cfgs, out = load_method_suite(CONFIGS / name, name.split("_")[0])  # as `recfuse run <method>-suite`
    assert cfgs and out.parts[:2] == ("benchmarks", "results")
    assert len({str(getattr(c, "out", "")) + method.run_label(c) for c in cfgs}) == len(cfgs)
