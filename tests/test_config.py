import argparse
from dataclasses import dataclass, field
from typing import Literal

import pytest

from recfuse.config import add_arguments, from_dict, option, resolve, to_dict
from recfuse.errors import ConfigError


@dataclass
class Inner:
    model: str = option("smollm2", "model")
    batch: int = option(4, "batch size")


@dataclass
class Outer:
    epochs: int = option(3, "epochs")
    lr: float = option(1e-3, "learning rate")
    ks: list[int] = option([3, 5], "cut-offs")
    mode: Literal["a", "b"] = option("a", "mode")
    progress: bool = option(True, "progress bars")
    params: dict = option({}, "extra", flag="param")
    llm: Inner = field(default_factory=Inner)
    out: str | None = option(None, "output")


def parse(argv, yaml_path=None):
    p = argparse.ArgumentParser()
    add_arguments(p, Outer)
    return resolve(Outer, p.parse_args(argv), yaml_path=yaml_path)


def test_defaults_yaml_then_command_line(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("epochs: 7\nlr: 0.1\nllm: {batch: 8}\nparams: {a: 1}\n")
    cfg = parse(["--config", str(y), "--epochs", "9", "--llm.model", "big", "--param", "b=2", "--no-progress",
                 "--ks", "1,2,3"])
    assert cfg.epochs == 9 and cfg.lr == 0.1 and cfg.ks == [1, 2, 3] and cfg.progress is False
    assert cfg.llm == Inner("big", 8)
    assert cfg.params == {"a": 1, "b": 2}
    assert to_dict(cfg)["llm"] == {"model": "big", "batch": 8}


def test_errors_name_the_option(tmp_path):
    with pytest.raises(ConfigError, match="option 'epochs' expects int, got 'x'"):
        parse(["--epochs", "x"])
    with pytest.raises(ConfigError, match="option 'mode' must be one of a, b"):
        parse(["--mode", "c"])
    with pytest.raises(ConfigError, match=r"unknown option\(s\) llm.size"):
        from_dict(Outer, {"llm": {"size": 3}})
    y = tmp_path / "bad.yaml"
    y.write_text("epochs: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse(["--config", str(y)])
    with pytest.raises(ConfigError, match="config file not found"):
        parse(["--config", str(tmp_path / "none.yaml")])


def test_help_text_on_every_option(capsys):
    p = argparse.ArgumentParser()
    add_arguments(p, Outer)
    text = p.format_help()
    for word in ("learning rate", "cut-offs", "batch size", "--llm.model", "--param KEY=VALUE", "choices: a, b"):
        assert word in text


@dataclass
class WithNestedDefault:
    llm: Inner = field(default_factory=lambda: Inner(batch=16))


def test_partial_nested_override_keeps_parent_default():
    p = argparse.ArgumentParser()
    add_arguments(p, WithNestedDefault)
    assert "(default: 16)" in p.format_help()
    cfg = resolve(WithNestedDefault, p.parse_args(["--llm.model", "x"]))
    assert cfg.llm == Inner("x", 16)
    assert resolve(WithNestedDefault, p.parse_args([])).llm.batch == 16
