"""What a method is to recfuse: a config type, a per-seed run returning a typed result, and a report.

A method (Llama4Rec, RecLM, the next paper) is one package with one class derived from :class:`Method` and
one registration (:func:`register_method`, or a line in :data:`BUILTIN_METHODS` for the methods recfuse
ships, or an entry point in the ``recfuse.methods`` group for a package of your own). The command line
(``recfuse run NAME``, ``recfuse run NAME-suite FILE``), the generic suite runner and ``recfuse report``
(:mod:`recfuse.runner`) find methods through this registry only; no method imports another.

The contract:

* ``config_type``: a dataclass of options (:func:`recfuse.config.option` with help text); it needs
  ``seeds: list[int]`` and ``out: str``;
* ``run_seed(seed)``: one seed end to end, returning the method's own typed result;
* ``write_report(results)``: every seed's results into :meth:`output_dir` (``results.json`` with
  ``rows`` and ``method``, ``config.yaml``, tables and plots), returning :class:`RunReport`; :meth:`Method.run`
  then writes ``manifest.json`` beside them (:mod:`recfuse.provenance`: command, git commit, machine, date);
* optionally ``seed_result_type`` (a result with ``to_json`` / ``from_json`` and ``per_user``), or your own
  ``seed_record`` / ``seed_from_record``: a finished seed as JSON and per-user arrays and back, so
  :meth:`Method.run` keeps finished seeds in the run folder (:class:`FinishedSeeds`) and a run resumed without
  its stage cache (another machine, a cleared cache) redoes only the seeds not yet finished;
* ``rerender(folder, config, results)``: the tables and plots again from ``results.json`` (``recfuse report``);
* ``suite_entry`` / ``write_suite``: a run's line in a suite's ``suite.json`` and the suite's ``suite.md``
  (defaults: the run's summary rows and one table per run).
"""

from __future__ import annotations

import errno
import importlib
import importlib.metadata
import inspect
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, cast

import numpy as np

from recfuse.config import from_dict, to_dict
from recfuse.errors import ConfigError
from recfuse.eval.report import flat_per_user, markdown_table, nested_per_user
from recfuse.io import file_sha256, fingerprint, load_npz, read_json, save_npz, write_json, write_text
from recfuse.provenance import current_command, files_written_since, folder_state, origin, write_manifest
from recfuse.stages import TimedStages

log = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT")
ResultT = TypeVar("ResultT")

#: the methods recfuse ships, imported only when asked for (``module:Class``)
BUILTIN_METHODS: dict[str, str] = {
    "llama4rec": "recfuse.llama4rec.pipeline:Llama4Rec",
    "reclm": "recfuse.reclm.pipeline:RecLM",
}
ENTRY_POINT_GROUP = "recfuse.methods"


class FinishedSeeds:
    """Finished seeds kept in a run's folder until its report is written, so an interrupted run resumed on a
    machine without its stage cache redoes only the seeds not finished:

    ``<out>/seeds/seed<N>.json``  the seed's result, with the key of the settings it was run with;
    ``<out>/seeds/seed<N>.npz``   its per-user values.

    A kept seed whose key is not this run's (its settings or its data changed) is recomputed; a kept seed that
    cannot be read is recomputed with a warning naming the file. :meth:`clear` removes the folder once the report
    holds every seed."""

    def __init__(self, out: Path, key: str):
        self.out, self.folder, self.key = out, out / "seeds", key

    def paths(self, seed: int) -> tuple[Path, Path]:
        return self.folder / f"seed{seed}.json", self.folder / f"seed{seed}.npz"

    def save(self, seed: int, data: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Keep one seed (arrays first: a seed counts as kept once its JSON is there, which names the arrays'
        checksum, so arrays of another run killed before its JSON are never paired with it)."""
        meta, values = self.paths(seed)
        save_npz(values, **arrays)
        write_json(meta, {"key": self.key, "result": data, "arrays_sha256": file_sha256(values),
                          "made": origin(current_command())})

    def _read(self, seed: int, quiet: bool = False) -> dict[str, Any] | None:
        """A kept seed's JSON if it was run with this key, else None (why is logged unless ``quiet``)."""
        meta = self.paths(seed)[0]
        if not meta.is_file():
            return None
        try:
            kept = read_json(meta)
            if kept.get("key") != self.key:
                if not quiet:
                    log.info("%s: kept with other settings or data: seed %d is run again", meta, seed)
                return None
            if "result" not in kept:
                raise ValueError("no 'result'")
            return kept
        except (OSError, ValueError, AttributeError) as e:
            if not quiet:
                log.warning("%s: cannot be read (%s): seed %d is run again", meta, e, seed)
            return None

    def kept(self, seeds: Sequence[int]) -> list[int]:
        """Which of ``seeds`` are kept with this key (a quick look: the JSON is read, the arrays are not)."""
        return [seed for seed in seeds if self._read(seed, quiet=True) is not None]

    def load(self, seed: int) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any]] | None:
        """A kept seed's (JSON, arrays, where and with what code it was computed:
        :func:`~recfuse.provenance.origin`, ``{}`` for seeds kept before that was recorded) if it was run with
        this key, else None."""
        kept = self._read(seed)
        if kept is None:
            return None
        values = self.paths(seed)[1]
        try:
            if "arrays_sha256" in kept and file_sha256(values) != kept["arrays_sha256"]:
                raise ValueError("not the arrays its JSON was kept with")
            made = kept.get("made")
            return kept["result"], load_npz(values), made if isinstance(made, dict) else {}
        except (OSError, ValueError, KeyError) as e:
            log.warning("%s: cannot be read (%s): seed %d is run again", values, e, seed)
            return None

    def clear(self, seeds: Sequence[int]) -> None:
        """Remove the kept ``seeds`` (those a report now holds; others, such as seeds of a longer run a quick
        pass interrupted, stay), and the folder once it holds nothing else."""
        for seed in seeds:
            for path in self.paths(seed):
                path.unlink(missing_ok=True)
        if self.folder.is_dir() and not any(p.name != REPORT_LOCK for p in self.folder.iterdir()):
            (self.folder / REPORT_LOCK).unlink(missing_ok=True)
            try:
                self.folder.rmdir()
            except OSError:  # another process kept a seed meanwhile
                pass

    @contextmanager
    def reporting(self, seeds: Sequence[int]) -> Iterator[bool]:
        """Whether this process writes the report of ``seeds``: it holds the folder's report lock (a process
        writing the report holds it; a killed one lets go) and finds every seed still kept (a process that
        wrote the report first removed them). Two processes sharing the folder never both write it where the
        file system has locks; where it has none (no fcntl, a network folder without them) this is said once
        and the report is written without the lock."""
        def all_kept() -> bool:
            return all(self.paths(seed)[0].is_file() for seed in seeds)

        try:
            import fcntl
        except ImportError:
            yield all_kept()
            return
        try:
            fd = os.open(self.folder / REPORT_LOCK, os.O_RDONLY | os.O_CREAT, 0o666)
        except OSError as e:  # the folder is gone (another process reported and cleared it), or not ours
            if not self.folder.is_dir():
                yield False
                return
            log.warning("%s: the report's lock cannot be opened (%s): written without it", self.folder, e)
            yield all_kept()
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):  # held: another process reports
                    yield False
                    return
                log.warning("%s: no file locks here (%s): the report is written without one", self.folder, e)
                yield all_kept()
                return
            try:
                yield all_kept()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


#: the lock of a run folder's report, in its seeds folder (:meth:`FinishedSeeds.reporting`)
REPORT_LOCK = ".report.lock"


#: settings that change no result: a kept seed is reused whatever they are
RESULT_NEUTRAL = ("seeds", "out", "progress")


@dataclass
class RunReport:
    """What a finished run left: its folder and its summary rows (mean, std, tests per variant)."""

    out: Path
    rows: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)


class Method(TimedStages, ABC, Generic[ConfigT, ResultT]):
    """Base class of a method: build it from its config, then :meth:`run` (all seeds and the report)."""

    #: registry name: ``recfuse run <name>``
    name: ClassVar[str] = ""
    #: shown in tables and titles
    title: ClassVar[str] = ""
    #: one line for ``recfuse run --help``
    summary: ClassVar[str] = ""
    #: the dataclass of options
    config_type: ClassVar[type]
    #: the per-seed result type, where it converts to and from JSON (``to_json``, ``from_json``) and holds its
    #: per-user arrays in ``per_user`` (variant -> value -> array): finished seeds are then kept in the run
    #: folder until the report is written (:class:`FinishedSeeds`)
    seed_result_type: ClassVar[Any] = None
    #: where ``recfuse run <name>-suite`` writes when the suite file names no ``out``
    default_suite_out: ClassVar[str] = "runs/suite"

    def __init__(self, cfg: ConfigT):
        self.cfg = cfg
        self._reset_timings()

    @abstractmethod
    def run_seed(self, seed: int) -> ResultT:
        """One seed end to end (every stage cached), as the method's typed result."""

    @abstractmethod
    def output_dir(self) -> Path:
        """The folder this configuration's results go to."""

    @abstractmethod
    def write_report(self, results: list[ResultT]) -> RunReport:
        """Every seed's results into :meth:`output_dir`; the summary rows."""

    def seeds(self) -> list[int]:
        return list(getattr(self.cfg, "seeds"))

    def seed_record(self, result: ResultT) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """A finished seed as (JSON, per-user arrays), kept in the run folder until the report is written, where
        the method names its :attr:`seed_result_type`; None: not kept (a resumed run relies on the stage cache
        alone). A servable run is not kept either: its served model comes from its last seed run."""
        if not self.keeps_seeds():
            return None
        typed: Any = result
        return typed.to_json(), flat_per_user(typed.per_user)

    def seed_from_record(self, data: dict[str, Any], arrays: dict[str, np.ndarray]) -> ResultT:
        """The inverse of :meth:`seed_record`."""
        if self.seed_result_type is None:
            raise ConfigError(f"{type(self).__name__} keeps no finished seeds")
        result: Any = self.seed_result_type.from_json(data)
        result.per_user = nested_per_user(arrays)
        return cast(ResultT, result)

    def data_fingerprint(self) -> str | None:
        """The fingerprint of the data this run reads (its content), where the method has a ``dataset``; its
        report records it, so that a suite runs a finished run again once its data changed."""
        dataset = getattr(self, "dataset", None)
        return dataset.fingerprint() if dataset is not None else None

    def settings_key(self) -> str:
        """What a kept seed must have been run with to be reused: every setting but those that change no result
        (:data:`RESULT_NEUTRAL`), and the data's fingerprint where the method has a ``dataset``."""
        settings = {k: v for k, v in to_dict(self.cfg).items() if k not in RESULT_NEUTRAL}
        return fingerprint(settings, self.data_fingerprint() or "")

    def finished_seeds(self) -> FinishedSeeds:
        """Where this run keeps its finished seeds until its report is written."""
        return FinishedSeeds(self.output_dir(), self.settings_key())

    def keeps_seeds(self) -> bool:
        """Whether this run keeps its finished seeds in its folder (see :meth:`seed_record`)."""
        return self.seed_result_type is not None and not getattr(self.cfg, "servable", False)

    def run(self, only_seeds: Collection[int] | None = None) -> RunReport | None:
        """Every seed (those kept in the run folder by an earlier, interrupted run are read back, not rerun),
        then the report, then ``manifest.json`` beside it recording how it was made.

        ``only_seeds``: run just these of the run's seeds and keep them, so one run's seeds can be spread over
        processes or machines that share its folder; the report is written by the run that finds every seed
        kept, and None is returned by one that does not (the seeds still to run are logged)."""
        seeds, label = self.seeds(), self.run_label(self.cfg)
        self.check_only_seeds(only_seeds)
        before = folder_state(self.output_dir())
        kept = self.finished_seeds()
        results: dict[int, ResultT] = {}
        elsewhere: dict[int, dict[str, Any]] = {}  # the seeds read back: where they were computed
        for n, seed in enumerate(seeds, 1):
            record = kept.load(seed)
            if record is not None:
                log.info("%s: seed %d (%d of %d) finished earlier: read from %s", label, seed, n, len(seeds),
                         kept.folder)
                results[seed], elsewhere[seed] = self.seed_from_record(*record[:2]), record[2]
                continue
            if only_seeds is not None and seed not in only_seeds:
                continue
            log.info("%s: seed %d (%d of %d)", label, seed, n, len(seeds))
            result = self.run_seed(seed)
            to_keep = self.seed_record(result)
            if to_keep is not None:
                kept.save(seed, *to_keep)
            results[seed] = result
        for seed in set(seeds) - set(results):  # left to other processes: kept by them meanwhile?
            if (found := kept.load(seed)) is not None:
                results[seed], elsewhere[seed] = self.seed_from_record(*found[:2]), found[2]
        if missing := [seed for seed in seeds if seed not in results]:
            log.info("%s: seeds %s still to run (another process, or a later run): the report is written once "
                     "every seed is kept in %s", label, ", ".join(map(str, missing)), kept.folder)
            return None
        if not self.keeps_seeds():
            return self._report_every_seed(results, seeds, kept, before, elsewhere)
        with kept.reporting(seeds) as mine:
            if not mine:
                log.info("%s: another process writes (or wrote) the report of these seeds", label)
                return None
            return self._report_every_seed(results, seeds, kept, before, elsewhere)

    def _report_every_seed(self, results: dict[int, ResultT], seeds: list[int], kept: FinishedSeeds,
                           before: dict[str, tuple[int, int]], elsewhere: dict[int, dict[str, Any]]) -> RunReport:
        """The report of every seed, the kept seeds it now holds removed, its manifest written (naming where
        the seeds read back were computed)."""
        report = self.write_report([results[seed] for seed in seeds])
        kept.clear(seeds)
        record_run(report.out, files_written_since(report.out, before), elsewhere)
        return report

    def check_only_seeds(self, only_seeds: Collection[int] | None) -> None:
        """Refuse ``only_seeds`` (see :meth:`run`) that are not the run's, or a run that keeps no seeds."""
        if only_seeds is None:
            return
        seeds, label = self.seeds(), self.run_label(self.cfg)
        if unknown := sorted(set(only_seeds) - set(seeds)):
            raise ConfigError(f"{label}: seed {', '.join(map(str, unknown))} is not one of the run's seeds {seeds}")
        if not self.keeps_seeds():
            raise ConfigError(f"{label}: this run keeps no finished seeds (a servable run, or a method without "
                              "kept seeds), so its seeds cannot be run apart")

    # -- results folders and suites, from what is on disk ----------------------------------------------
    @classmethod
    @abstractmethod
    def rerender(cls, folder: Path, config: Any, results: dict[str, Any]) -> list[Path]:
        """Re-render a results folder's tables and plots from its ``results.json``; the files written."""

    @classmethod
    def check_suite(cls, configs: Sequence[Any], path: str | Path) -> None:
        """Refuse a suite whose runs cannot live side by side (e.g. two runs writing one folder)."""

    @classmethod
    def run_label(cls, config: Any) -> str:
        """How a suite names one of its runs."""
        return Path(str(getattr(config, "dataset", "run"))).name

    @classmethod
    def suite_entry(cls, config: Any, results: dict[str, Any], folder: Path, suite_out: Path) -> dict[str, Any]:
        """A finished run's entry in ``suite.json`` (``folder`` relative to ``suite_out`` is kept)."""
        return {"label": cls.run_label(config), "folder": folder.relative_to(suite_out).as_posix()
                if folder.is_relative_to(suite_out) else str(folder), "rows": results["rows"]}

    @classmethod
    def entry_folder(cls, suite_out: Path, entry: dict[str, Any]) -> Path:
        """The results folder of a suite entry."""
        return suite_out / entry["folder"]

    @classmethod
    def write_suite(cls, out: Path, entries: list[dict[str, Any]], pending: Sequence[str] = ()) -> list[Path]:
        """``suite.json`` and ``suite.md`` from the finished runs' entries and the runs still to come."""
        sections = [f"## {e['label']}\n\n" + markdown_table(e["rows"]) for e in entries]
        write_json(out / "suite.json", {"method": cls.name, "runs": entries, "pending": list(pending)})
        write_text(out / "suite.md", f"# {cls.title or cls.name} suite\n\n" + pending_note(pending) + "\n".join(sections))
        return [out / "suite.md", out / "suite.json"]


def record_run(folder: Path, files: Sequence[Path], seeds_made_elsewhere: dict[int, dict[str, Any]] | None = None
               ) -> None:
    """``manifest.json`` in ``folder`` for ``files`` (the command, git commit, machine and date of this run, and
    of each seed it read back instead of computing). The results are written by then: a manifest that cannot be
    written is a warning, never a lost run."""
    if not files:
        return
    try:
        write_manifest(files, seeds_made_elsewhere=seeds_made_elsewhere)
    except OSError as e:
        stale = folder / "manifest.json"
        try:  # it describes an earlier run (its command, commit and date), not these results
            stale.unlink(missing_ok=True)
            gone = "; the manifest.json of an earlier run there was removed"
        except OSError:
            gone = f"; {stale} is still the earlier run's"
        log.warning("%s: the results are written, but their manifest.json could not be: %s%s", folder, e, gone)


def point_label(label: str, point: str | None) -> str:
    """A run's label in a suite with axes: the folder of its point (relative to the suite's) in brackets after
    it, e.g. ``"direct: mf [instructions-128]"``; the label alone where there is no point."""
    return f"{label} [{point}]" if point else label


def pending_note(pending: Sequence[str]) -> str:
    """The line a suite report opens with while runs are still to come (empty when none are)."""
    return (f"Still to run: {', '.join(pending)} (the suite resumes there: finished runs are reused).\n\n"
            if pending else "")


# --------------------------------------------------------------------------------------------- registry

_REGISTRY: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make a :class:`Method` available under its ``name``."""
    if not (inspect.isclass(cls) and issubclass(cls, Method)) or inspect.isabstract(cls):
        raise ConfigError(f"{cls!r} is not a concrete recfuse.method.Method")
    if not cls.name:
        raise ConfigError(f"{cls.__name__} has no name (set the class attribute 'name')")
    _REGISTRY[cls.name] = cls
    return cls


def _load(target: str) -> type[Method]:
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ModuleNotFoundError, AttributeError) as e:
        raise ConfigError(f"cannot import method {target!r}: {e}") from None
    if not (inspect.isclass(cls) and issubclass(cls, Method)):
        raise ConfigError(f"{target!r} is not a recfuse.method.Method")
    return cls


def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def get_method(name: str) -> type[Method]:
    """A method by registered name, or ``package.module:Class`` for one of your own."""
    if ":" in name:
        return _load(name)
    if name not in _REGISTRY:
        target = BUILTIN_METHODS.get(name) or _entry_points().get(name)
        if target is None:
            raise ConfigError(f"unknown method {name!r}; known: {', '.join(available_methods())}")
        _REGISTRY[name] = _load(target)
    return _REGISTRY[name]


def available_methods() -> list[str]:
    """Names of every method: built in, registered in this process, and from entry points."""
    return sorted({*BUILTIN_METHODS, *_REGISTRY, *_entry_points()})


def method_of_results(results: dict[str, Any], config: dict[str, Any], where: str) -> type[Method]:
    """The method that wrote a results folder: the ``method`` its results.json names, else (folders written
    before results named their method) the one method whose config type accepts its config.yaml."""
    if results.get("method"):
        return get_method(str(results["method"]))
    fits = []
    for name in available_methods():
        cls = get_method(name)
        try:
            from_dict(cls.config_type, config)
        except ConfigError:
            continue
        fits.append(cls)
    if len(fits) != 1:
        raise ConfigError(f"{where}: cannot tell which method wrote it (results.json names none, and its "
                          f"config.yaml fits {', '.join(c.name for c in fits) or 'no known method'})")
    return fits[0]
