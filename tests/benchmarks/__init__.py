"""Tests of the scripts in benchmarks/ (loaded from their files: benchmarks/ is not a package)."""

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_benchmark(filename: str) -> ModuleType:
    """The module of ``benchmarks/<filename>``, freshly executed."""
    spec = importlib.util.spec_from_file_location(Path(filename).stem, ROOT / "benchmarks" / filename)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
