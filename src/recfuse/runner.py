"""Running and reporting any registered method: one run, a suite of runs, and ``recfuse report``.

Nothing here knows a particular method: everything goes through :mod:`recfuse.method`'s registry, so a new
method gets suites, resumption and re-rendering without a line here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from recfuse.config import from_dict, load_suite, matches, read_yaml_mapping, to_dict
from recfuse.errors import ConfigError
from recfuse.eval.report import finished_run
from recfuse.io import read_json
from recfuse.method import Method, RunReport, get_method, method_of_results, point_label, record_run
from recfuse.provenance import folder_state, recorded_files

log = logging.getLogger(__name__)
#: settings that do not change results: a finished run is reused whatever they are
#: options that change what a run writes beside its results, not the results: a finished run is reused across them
IGNORED_FOR_REUSE = ("progress", "servable")


def run_method(name: str, cfg: Any, only_seeds: Sequence[int] | None = None) -> RunReport | None:
    """Run method ``name`` with ``cfg`` (every seed and its report; ``only_seeds``: see :meth:`Method.run`)."""
    return get_method(name)(cfg).run(only_seeds)


def finished_results(method: type[Method], folder: Path, cfg: Any,
                     data_fingerprint: str | None = None) -> dict[str, Any] | None:
    """The ``results.json`` of a run already written in ``folder`` with the same settings as ``cfg`` (and the
    same data, where ``data_fingerprint`` and the results both name it), else None.

    The stored config.yaml is read back through the method's config type, so options added since (with
    defaults that keep the old behaviour) do not make a finished run look different.
    """
    def read_stored(stored: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return to_dict(from_dict(method.config_type, stored))
        except ConfigError:
            return None

    return finished_run(folder, to_dict(cfg), IGNORED_FOR_REUSE, read_stored, data_fingerprint)


def results_state(folder: Path) -> tuple[int, int] | None:
    """The modification time (ns) and size of ``folder``'s results.json (:func:`~recfuse.provenance.folder_state`),
    None where there is none: what tells a report rewritten since."""
    return folder_state(folder).get("results.json")


def reported_since(method: type[Method], folder: Path, before: tuple[int, int] | None, cfg: Any,
                   data_fingerprint: str | None = None) -> bool:
    """Whether ``folder`` holds a report of ``cfg`` (on the data of ``data_fingerprint``) written since its
    results.json was in state ``before`` (:func:`results_state`; by another process that shared the run's seeds,
    not an earlier report, which ``--recompute`` is running again)."""
    now = results_state(folder)
    return now is not None and now != before and finished_results(method, folder, cfg, data_fingerprint) is not None


def results_on_other_seeds(method: type[Method], folder: Path, cfg: Any,
                           data_fingerprint: str | None = None) -> tuple[Any, dict[str, Any]] | None:
    """A run written in ``folder`` with ``cfg``'s settings but other seeds: (the config of what was run, its
    results), else None. A suite shows such a run for what it is (its own seeds; those asked for and missing are
    still to run) instead of dropping it, so a point run on one seed first stays in a 3-seed suite's report, and
    a 3-seed point stays in a quick pass with ``--set seeds=[0]``."""
    seeds = getattr(cfg, "seeds", None)
    if not seeds or not dataclasses.is_dataclass(cfg) or isinstance(cfg, type) or not (folder / "config.yaml").is_file():
        return None
    stored = read_yaml_mapping(folder / "config.yaml", "run config").get("seeds")
    if not isinstance(stored, list) or not stored or stored == list(seeds):
        return None
    done = dataclasses.replace(cfg, seeds=list(stored))
    results = finished_results(method, folder, done, data_fingerprint)
    return (done, results) if results is not None else None


def suite_method(path: str | Path, name: str | None) -> type[Method]:
    """The method of a suite file: ``name`` (from the command), or the file's ``method`` key; both must agree."""
    declared = read_yaml_mapping(path, "suite").get("method")
    if name and declared and declared != name:
        raise ConfigError(f"{path}: the suite is for method {declared!r}, not {name!r}")
    if not (name or declared):
        raise ConfigError(f"{path}: say which method the suite runs (a top-level 'method: NAME')")
    return get_method(str(name or declared))


def load_method_suite(path: str | Path, name: str | None = None,
                      overrides: dict[str, Any] | None = None) -> tuple[type[Method], list[Any], Path]:
    """A suite file's method, its runs' configs (``common`` under each run's settings, ``overrides`` on top)
    and its output folder; the method refuses runs that cannot live side by side."""
    method = suite_method(path, name)
    cfgs: list[Any]
    cfgs, out = load_suite(path, method.config_type, overrides, method.default_suite_out)
    method.check_suite(cfgs, path)
    return method, cfgs, out


def run_suite(path: str | Path, name: str | None = None, overrides: dict[str, Any] | None = None,
              reuse: bool = True, only: dict[str, Any] | None = None,
              only_seeds: Sequence[int] | None = None) -> Path:
    """Every run of a suite file, then the suite's report (rewritten after each run, so an interrupted suite
    leaves the report of what it finished). A run whose folder already holds results of the same settings is
    reused (``reuse=False`` runs it again). ``only`` (option -> value, dotted names for nested options) runs
    just the matching configurations; the report still holds every finished run and lists the rest as still to
    run. ``only_seeds`` runs just these seeds of each selected run and keeps them (see :meth:`Method.run`): a
    run's report is written by the process that finds every one of its seeds kept. Returns the suite's folder."""
    method, cfgs, out = load_method_suite(path, name, overrides)
    selected = [not only or matches(cfg, only) for cfg in cfgs]
    if not any(selected):
        raise ConfigError(f"{path}: no configuration has every setting of --only {only}")
    # each run's folder, and where it keeps the seeds an interrupted run finished, from one instance at a time
    # (an instance holds its dataset)
    kept_seeds, data = [], []  # and the fingerprint of the data each reads: results of other data are run again
    for cfg, chosen in zip(cfgs, selected):
        instance = method(cfg)
        if chosen:
            instance.check_only_seeds(only_seeds)  # every run's, before any run starts
        kept_seeds.append(instance.finished_seeds())
        data.append(instance.data_fingerprint())
    folders = [kept.out for kept in kept_seeds]
    entries: list[dict[str, Any] | None] = [None] * len(cfgs)  # the finished runs' entries, in the file's order
    pending: list[str | None] = [None] * len(cfgs)  # what is still to run, in the same order

    def label(cfg: Any) -> str:  # a suite with axes: the point's folder beside the run's name
        sub = Path(cfg.out)
        return point_label(method.run_label(cfg),
                           sub.relative_to(out).as_posix() if sub != out and sub.is_relative_to(out) else None)

    def write() -> None:
        written = method.write_suite(out, [e for e in entries if e is not None],
                                     pending=[p for p in pending if p is not None])
        record_run(out, [p for p in written if p.parent == out])
        record_new_files([p for p in written if p.parent != out])  # e.g. a figure over runs, in a run's folder

    def still_to_run(i: int) -> str:  # a run not finished, with the seeds an interrupted run or another process kept
        cfg, folder = cfgs[i], folders[i]
        if not (kept := kept_seeds[i].kept(cfg.seeds)):
            return label(cfg)
        where = folder.relative_to(out).as_posix() if folder.is_relative_to(out) else str(folder)
        return (f"{label(cfg)} (seeds {', '.join(map(str, cfg.seeds))}: {len(kept)} of {len(cfg.seeds)} "
                f"finished, kept in {where}/seeds)")

    # what the folders hold already, so that a report written mid-way holds every finished run
    to_run = []
    for i, (cfg, folder) in enumerate(zip(cfgs, folders)):
        results = finished_results(method, folder, cfg, data[i]) if reuse or not selected[i] else None
        if results is not None:
            entries[i] = method.suite_entry(cfg, results, folder, out)
            if selected[i]:
                log.warning("%s: reusing the results already written with the same settings in %s "
                            "(--recompute to run again)", label(cfg), folder)
            continue
        pending[i] = still_to_run(i)
        if selected[i]:
            to_run.append(i)
        if other := results_on_other_seeds(method, folder, cfg, data[i]):
            done, results = other  # shown with the seeds it has (until a selected run replaces it)
            entries[i] = method.suite_entry(done, results, folder, out)
            missing = set(cfg.seeds) - set(done.seeds)
            if missing:
                pending[i] = (f"{label(cfg)} (seeds {', '.join(map(str, cfg.seeds))}: "
                              f"{len(cfg.seeds) - len(missing)} of {len(cfg.seeds)} done)")
            elif not selected[i]:
                pending[i] = None
    if to_run:
        write()  # before the first run: the report says at once what is finished and what is to come
    for n, i in enumerate(to_run, 1):
        if reuse and finished_results(method, folders[i], cfgs[i], data[i]) is not None:
            log.info("%s: finished meanwhile (another process sharing its seeds wrote its report)", label(cfgs[i]))
        else:
            log.info("run %d of %d: %s", n, len(to_run), label(cfgs[i]))
            before = results_state(folders[i])
            if (method(cfgs[i]).run(only_seeds) is None
                    and not reported_since(method, folders[i], before, cfgs[i], data[i])):
                pending[i] = still_to_run(i)  # its other seeds are left to another process
                write()
                continue
        entries[i] = method.suite_entry(cfgs[i], read_json(folders[i] / "results.json"), folders[i], out)
        pending[i] = None
        write()
    write()
    return out


def record_new_files(written: list[Path]) -> None:
    """Record in their folders' manifests the files a re-rendering wrote that no manifest there lists yet
    (a figure added since the run): those it rewrote keep the record of the run that made them."""
    for folder in sorted({p.parent for p in written}):
        known = recorded_files(folder)
        if new := [p for p in written if p.parent == folder and p.name not in known and p.name != "manifest.json"]:
            record_run(folder, new)


def rerender(folder: Path) -> list[Path]:
    """Re-render one results folder, or a suite's folder (its runs, then its suite report), from the JSON
    and YAML in it, running nothing; returns the files written (new ones are recorded in their manifests)."""
    written = _rerender(folder)
    record_new_files(written)
    return written


def _rerender(folder: Path) -> list[Path]:
    if (folder / "suite.json").is_file() and not (folder / "results.json").is_file():
        return rerender_suite(folder)
    for name in ("results.json", "config.yaml"):
        if not (folder / name).is_file():
            raise ConfigError(f"{folder}: no {name} (not a results folder of recfuse run)")
    with open(folder / "config.yaml", encoding="utf-8") as fh:
        config = yaml.safe_load(fh) or {}
    results = read_json(folder / "results.json")
    method = method_of_results(results, config, str(folder))
    return method.rerender(folder, from_dict(method.config_type, config), results)


def rerender_suite(folder: Path) -> list[Path]:
    """A suite folder: every run folder re-rendered, then the suite's report from their results."""
    suite = read_json(folder / "suite.json")
    runs = suite.get("runs") or []
    if not runs:
        raise ConfigError(f"{folder / 'suite.json'}: no runs")
    if suite.get("method"):
        method = get_method(str(suite["method"]))
    else:  # suites written before suite.json named its method
        names = {method_of_results({}, run.get("config") or {}, str(folder / "suite.json")).name for run in runs}
        if len(names) != 1:
            raise ConfigError(f"{folder / 'suite.json'}: expected the runs of one method, found {sorted(names)}")
        method = get_method(names.pop())
    written: list[Path] = []
    entries = []
    for entry in runs:
        run_folder = method.entry_folder(folder, entry)
        written += _rerender(run_folder)
        entries.append({**entry, "rows": read_json(run_folder / "results.json")["rows"]})
    return written + method.write_suite(folder, entries, suite.get("pending", []))
