"""Typed configs: dataclasses with help text on every field, loaded from YAML under command-line overrides.

    @dataclass
    class TrainConfig:
        model: str = option("lightgcn", "recommender name or package.module:Class")

    parser = argparse.ArgumentParser(); add_arguments(parser, TrainConfig)
    cfg = resolve(TrainConfig, parser.parse_args())   # defaults < --config YAML < command line

The same config object drives the Python API (``main(cfg)``) and the shell. Nested dataclasses become
dotted options (``--llm.model``). ``dict`` fields take repeated ``--param key=value``.

Values are checked where they are parsed (:func:`from_dict`, which :func:`resolve` and suites use): the type,
then the field's own rules (``option(..., min=1, max=..., choices=[...], empty=True)``), then the rules of the
option names every config shares (:data:`CONVENTIONS`: ``ks`` at least 1, ``seeds`` at least 0, ...). A list
option given explicitly may not be empty unless its field says ``empty=True``. :func:`resolve` also checks that
an ``out`` folder can be written before any work starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import os
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeGuard, TypeVar, get_args, get_origin

import yaml

from recfuse.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
_UNSET = object()


#: rules for options of these names in every config (a field's own ``min`` / ``max`` / ``choices`` win)
CONVENTIONS: dict[str, dict[str, Any]] = {
    "ks": {"min": 1},  # ranking cut-offs
    "seeds": {"min": 0},  # random seeds (numpy refuses negative ones)
    "kcore": {"min": 0},
}
RULES = ("min", "max", "choices", "empty")


def option(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with help text (mutable defaults are copied per instance).

    Rules checked on every value given (each element of a list): ``min`` / ``max`` (inclusive bounds),
    ``choices`` (allowed values), ``empty=True`` (a list may be empty).
    """
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help, **kwargs})
    return dataclasses.field(default=default, metadata={"help": help, **kwargs})


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_config_type(tp: object) -> TypeGuard[type[DataclassInstance]]:
    """Whether a field's type is a nested config (a dataclass type, not an instance)."""
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Convert a YAML or command-line value to the field's type, or raise naming the field."""
    tp, optional = _strip_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise ConfigError(f"option '{name}' may not be empty")
    origin = get_origin(tp)
    try:
        if origin is Literal:
            allowed = get_args(tp)
            if value not in allowed:
                raise ConfigError(f"option '{name}' must be one of {', '.join(map(str, allowed))}, not {value!r}")
            return value
        if _is_config_type(tp):
            if isinstance(value, tp):
                return value
            if not isinstance(value, dict):
                raise ConfigError(f"option '{name}' must be a mapping")
            return from_dict(tp, value, prefix=f"{name}.")
        if origin in (list, tuple):
            (inner, *_) = get_args(tp) or (str,)
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()]
            return [_coerce(v, inner, name) for v in value]
        if origin is dict or tp is dict:
            if not isinstance(value, dict):
                raise ConfigError(f"option '{name}' must be a mapping")
            return dict(value)
        if tp is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
        if tp is Path:
            return Path(value)
    except ConfigError:
        raise
    except (TypeError, ValueError):
        raise ConfigError(f"option '{name}' expects {getattr(tp, '__name__', tp)}, got {value!r}") from None
    return value


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build ``cls`` from a mapping, checking names and types.

    A nested dataclass given as a partial mapping keeps the parent's default for the keys not given.
    """
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(prefix + u for u in unknown)}; "
                          f"known: {', '.join(prefix + n for n in sorted(fields))}")
    values = {}
    for k, v in data.items():
        default = _default(fields[k])
        if isinstance(v, dict) and dataclasses.is_dataclass(default) and not isinstance(default, type):
            v = _merge(dataclasses.asdict(default), v)
        values[k] = _coerce(v, hints[k], prefix + k)
        check_value(fields[k], values[k], prefix + k)
    return cls(**values)


def check_value(f: dataclasses.Field, value: Any, name: str) -> None:
    """Raise :class:`~recfuse.errors.ConfigError` naming option ``name`` when ``value`` breaks its field's rules
    (``min``, ``max``, ``choices``, ``empty``; :data:`CONVENTIONS` for the shared option names)."""
    rules = {**CONVENTIONS.get(f.name, {}), **{k: f.metadata[k] for k in RULES if k in f.metadata}}
    if isinstance(value, list):
        if not value and not rules.get("empty", False):
            raise ConfigError(f"option '{name}' needs at least one value")
        items = value
    elif isinstance(value, (int, float, str)):
        items = [value]
    else:
        return
    for v in items:
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"option '{name}' must be a finite number, not {v!r}")
        if "min" in rules and isinstance(v, (int, float)) and v < rules["min"]:
            raise ConfigError(f"option '{name}' must be at least {rules['min']}, not {v!r}")
        if "max" in rules and isinstance(v, (int, float)) and v > rules["max"]:
            raise ConfigError(f"option '{name}' must be at most {rules['max']}, not {v!r}")
        if "choices" in rules and v not in rules["choices"]:
            raise ConfigError(f"option '{name}' must be one of {', '.join(map(str, rules['choices']))}, not {v!r}")


def check_out(path: str | Path, name: str = "out") -> None:
    """Raise :class:`~recfuse.errors.ConfigError` when results cannot be written to folder ``path``: it (or a
    folder above it) is a file, or the nearest existing folder above it is not writable. Checked before any
    work starts, so that finished results are never lost to a bad ``--out``."""
    target = Path(path).expanduser().absolute()
    for p in (target, *target.parents):
        if p.exists():
            if not p.is_dir():
                raise ConfigError(f"option '{name}': {p} is a file, not a folder (results go into a folder)")
            if not os.access(p, os.W_OK | os.X_OK):
                raise ConfigError(f"option '{name}': cannot write to {p} (permission denied)"
                                  + ("" if p == target else f" to make {target}"))
            return


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain data (for YAML / JSON beside results)."""
    out = dataclasses.asdict(cfg)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in out.items()}


def _parse_pairs(pairs: list[str], name: str) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"option '--{name}' expects key=value, got {pair!r}")
        out[key.strip()] = yaml.safe_load(raw) if raw else ""
    return out


def add_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "", defaults: Any = None) -> None:
    """Add one option per field of ``cls`` (help from the field's metadata); ``--config`` for YAML.

    ``defaults`` (an instance) overrides the shown defaults: a nested config shows its parent's defaults.
    """
    if not prefix:
        parser.add_argument("--config", type=Path, default=None,
                            help="YAML file with option values (the command line overrides it)")
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp, _ = _strip_optional(hints[f.name])
        dest = prefix + f.name
        help_text = f.metadata.get("help", "")
        default = getattr(defaults, f.name) if defaults is not None else _default(f)
        if _is_config_type(tp):
            add_arguments(parser, tp, prefix=dest + ".", defaults=default)
            continue
        flag = "--" + dest.replace("_", "-")
        if get_origin(tp) is Literal:
            help_text += f" (choices: {', '.join(map(str, get_args(tp)))})"
        if tp is bool:
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=_UNSET,
                                help=f"{help_text} (default: {default})")
        elif get_origin(tp) is dict or tp is dict:
            single = f.metadata.get("flag", dest.rstrip("s"))
            parser.add_argument("--" + single, dest=dest, action="append", default=None, metavar="KEY=VALUE",
                                help=f"{help_text} (repeatable)")
        else:
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            parser.add_argument(flag, dest=dest, default=_UNSET, metavar=f.name.upper(),
                                help=f"{help_text} (default: {shown})")


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML file holding a mapping; a missing file, bad YAML or another shape raises naming the file."""
    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of option names to values")
    return loaded


def resolve(cls: type[T], args: argparse.Namespace | None = None, yaml_path: str | Path | None = None,
            overrides: dict[str, Any] | None = None) -> T:
    """Defaults, then the YAML file, then command-line values, then ``overrides``."""
    data: dict[str, Any] = {}
    yaml_path = yaml_path or (getattr(args, "config", None) if args is not None else None)
    if yaml_path:
        data = read_yaml_mapping(yaml_path, "config")
    if args is not None:
        hints = _flat_hints(cls)
        given = {}
        for key, value in vars(args).items():
            if value is _UNSET or value is None or key not in hints:
                continue
            tp, _ = _strip_optional(hints[key])
            if get_origin(tp) is dict or tp is dict:
                value = _parse_pairs(value, key.rstrip("s"))
                value = _merge(_lookup(data, key) or {}, value)
            given[key] = value
        data = _merge(data, _nest(given))
    if overrides:
        data = _merge(data, _nest(overrides))
    cfg = from_dict(cls, data)
    if isinstance(getattr(cfg, "out", None), (str, Path)):
        check_out(getattr(cfg, "out"))
    return cfg


def _lookup(data: dict, dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _flat_hints(cls: type, prefix: str = "") -> dict[str, Any]:
    out = {}
    for name, tp in _hints(cls).items():
        inner, _ = _strip_optional(tp)
        if _is_config_type(inner):
            out.update(_flat_hints(inner, prefix + name + "."))
        else:
            out[prefix + name] = tp
    return out


def add_suite_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments every suite command takes: the suite file and repeatable ``--set key=value`` overrides."""
    parser.add_argument("file", help="suite YAML file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a common setting, e.g. --set seeds=[0] (repeatable)")
    parser.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                        help="run only the configurations with this setting (repeatable, all must hold; dotted "
                             "names for nested options, e.g. --only backbone=lightgcn --only llm.model=gemma3-270m); "
                             "the report still shows every finished run and lists the others as still to run")
    parser.add_argument("--recompute", action="store_true",
                        help="run every configuration again, even one whose results are already written "
                             "with the same settings (by default those are reused)")


def suite_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--set`` overrides of a suite command as a mapping."""
    return _parse_pairs(args.set, "set")


def suite_filter(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--only`` settings of a suite command as a mapping (dotted names kept)."""
    return _parse_pairs(getattr(args, "only", []), "only")


def matches(cfg: Any, only: dict[str, Any]) -> bool:
    """Whether a config has every ``only`` setting (dotted names reach nested options); an unknown name raises."""
    flat = _flatten(to_dict(cfg))
    for key, value in only.items():
        if key not in flat:
            raise ConfigError(f"--only {key}: no such option (options: {', '.join(sorted(flat))})")
        if flat[key] != value and str(flat[key]) != str(value):
            return False
    return True


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every option of a nested mapping by its dotted name (nested mappings kept under their own name too)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        out[f"{prefix}{k}"] = v
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
    return out


#: the top-level settings of a suite file
SUITE_KEYS = frozenset({"method", "common", "runs", "axes", "out"})


def load_suite(path: str | Path, cls: type[T], overrides: dict[str, Any] | None = None,
               default_out: str = "runs/suite") -> tuple[list[T], Path]:
    """Configs of a suite file: ``common`` settings, a list of ``runs`` (each overriding them), ``out``.

    ``axes`` (optional): option -> list of values (dotted names reach nested options, e.g. ``llm.model``);
    every run is repeated for every combination, the smallest combinations first, each writing under
    ``<out>/<axis>-<value>_...`` (see :func:`axes_folder`) so the combinations live side by side.
    """
    spec = read_yaml_mapping(path, "suite")
    unknown = sorted(set(spec) - SUITE_KEYS)
    if unknown:  # a misspelt 'common' or 'axes' would otherwise be dropped without a word
        raise ConfigError(f"{path}: unknown suite setting(s) {', '.join(map(str, unknown))}; a suite file has "
                          f"{', '.join(sorted(SUITE_KEYS))} (a run's options go under 'common' or in 'runs')")
    if not isinstance(spec.get("runs"), list) or not spec["runs"]:
        raise ConfigError(f"{path}: 'runs' must be a non-empty list of run settings")
    out = Path(spec.get("out", default_out))
    check_out(out)
    axes = spec.get("axes") or {}
    if not isinstance(axes, dict) or not all(isinstance(v, list) and v for v in axes.values()):
        raise ConfigError(f"{path}: 'axes' maps option names to non-empty lists of values, e.g. "
                          "{instructions: [128, 512]}")
    common = _merge(spec.get("common", {}), overrides or {})
    cfgs = []
    for combo in itertools.product(*axes.values()):
        chosen = dict(zip(axes, combo))
        values: dict[str, Any] = {}
        for key, value in chosen.items():
            values = _merge(values, _nested(str(key), value))
        run_out = out / axes_folder(chosen) if chosen else out
        for i, run in enumerate(spec["runs"]):
            try:
                cfgs.append(from_dict(cls, _merge(_merge(_merge(common, run), values), {"out": str(run_out)})))
            except ConfigError as e:
                where = f"run {i + 1}" + (f" with {chosen}" if chosen else "")
                raise ConfigError(f"{path}: {where}: {e}") from None
    return cfgs, out


def axes_folder(values: dict[str, Any]) -> str:
    """The sub-folder of one combination of a suite's axes, e.g. ``instructions-512_llm.model-gemma3-270m``."""
    return "_".join(f"{k}-{v}" for k, v in values.items()).replace("/", "-").replace(" ", "")


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    head, _, rest = dotted.partition(".")
    return {head: _nested(rest, value) if rest else value}
