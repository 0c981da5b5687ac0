"""A servable run folder: what ``recfuse train --out DIR`` leaves in ``DIR/<dataset>/<model>/`` for ``recfuse serve``.

Beside the results (``results.json``, ``.md``, ``.csv``, ``config.yaml``) a run folder holds:

* ``seed-<N>/model``: the model trained with seed N, as its ``save`` wrote it (``Recommender.load`` reads it);
* ``dataset/meta.json`` and ``dataset/arrays.npz``: the dataset as the model saw it (after any k-core
  filter): the external user and item ids (internal index = position), the interactions with their part of
  the split (train, valid, test: the items each user has seen, their time order, the training counts that
  weigh Llama4Rec's aggregation), and the item side features (titles and text for prompts and new items'
  display, the categorical and numeric features a feature tower encodes);
* ``serving.json``, written last: the model, its task, the seeds, and how a new item's features are encoded
  (the feature encoder of a feature tower, the text encoder of a text tower and what it reads, and the
  encoder of fused item profiles, if any). Its presence is what makes the folder servable.

``recfuse train --out``, ``recfuse run llama4rec`` and ``recfuse run reclm`` write run folders.

Every file is written atomically (a folder through a temporary folder renamed into place), so a crash never
leaves a half-written model or dataset. Nothing is pickled.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recfuse import __version__
from recfuse.data.dataset import Dataset, Feature, FeatureTable, Interactions, Vocab
from recfuse.data.splits import Split
from recfuse.errors import ConfigError, DataError
from recfuse.io import atomic_dir, load_npz, read_json, save_npz, write_json
from recfuse.models.base import Recommender, get_model_class
from recfuse.models.towers import FeatureEncoder

FORMAT = 1
MANIFEST = "serving.json"
PARTS = {"train": 0, "valid": 1, "test": 2}


def model_dir(folder: str | Path, seed: int) -> Path:
    """Where the model of ``seed`` is saved in a run folder."""
    return Path(folder) / f"seed-{seed}" / "model"


# -- writing ----------------------------------------------------------------------------------------------


def _features_to_files(table: FeatureTable) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    meta: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    for n, f in enumerate(table):
        entry: dict[str, Any] = {"name": f.name, "kind": f.kind}
        if f.kind == "text":
            entry["values"] = [str(v) for v in f.require_values()]
        elif f.kind == "numeric":
            arrays[f"item_feature_{n}_values"] = f.require_values().astype(np.float64)
        else:
            entry["vocab"] = list(f.require_vocab())
            arrays[f"item_feature_{n}_codes"] = f.require_codes().astype(np.int64)
            if f.kind == "multi":
                arrays[f"item_feature_{n}_offsets"] = f.require_offsets().astype(np.int64)
        entry["index"] = n
        meta.append(entry)
    return meta, arrays


def write_dataset(folder: str | Path, split: Split) -> None:
    """``folder/dataset/``: ids, interactions by part, item features (atomically, as one folder)."""
    dataset = split.dataset
    parts = [(split.train, "train"), (split.valid, "valid"), (split.test, "test")]
    inter = split.train.concat(split.valid).concat(split.test)
    part = np.concatenate([np.full(len(p), PARTS[name], np.int8) for p, name in parts])
    features, arrays = _features_to_files(dataset.item_features)
    arrays.update(user=inter.user, item=inter.item, part=part)
    if inter.rating is not None:
        arrays["rating"] = inter.rating
    if inter.timestamp is not None:
        arrays["timestamp"] = inter.timestamp
    meta = {"name": dataset.name, "source": dataset.source, "protocol": split.protocol,
            "users": [str(u) for u in dataset.users.ids], "items": [str(i) for i in dataset.items.ids],
            "item_features": features}
    with atomic_dir(Path(folder) / "dataset") as tmp:
        write_json(tmp / "meta.json", meta)
        save_npz(tmp / "arrays.npz", **arrays)


def write_model(folder: str | Path, seed: int, model: Recommender) -> Path:
    """``folder/seed-<seed>/model``: the model as its ``save`` writes it (the seed's folder atomically)."""
    target = model_dir(folder, seed)
    with atomic_dir(target.parent) as tmp:
        model.save(tmp / target.name)
    return target


def write_manifest(folder: str | Path, model_name: str, model: Recommender, seeds: Sequence[int],
                   split: Split, item_text_encoder: str = "", side_features: FeatureEncoder | None = None,
                   settings: Mapping[str, Any] | None = None, item_text_format: str = "tower",
                   item_profile_encoder: str = "") -> Path:
    """``folder/serving.json``, written last: what ``recfuse serve`` needs to load the run.

    ``side_features``: the encoder of the item side features a feature tower was trained on (fitted here
    when the model has a feature tower and none is given); ``item_text_encoder``: the text encoder of a text
    tower (its vectors come first in the item features); ``item_text_format``: what it encodes per item,
    ``tower`` (title and text: ``recfuse train --item-text``) or ``description`` (the item's whole
    description, features included: RecLM); ``item_profile_encoder``: the encoder of the item profiles a
    model fuses (RecLM's Augment; a new item's profile is its description's fallback profile)."""
    if item_text_format not in ("tower", "description"):
        raise ConfigError(f"item_text_format must be 'tower' or 'description', got {item_text_format!r}")
    tower = str(getattr(model, "item_tower", "id") or "id")
    if tower != "id" and side_features is None and not item_text_encoder:
        try:
            side_features = FeatureEncoder.fit(split.dataset.item_features)
        except ConfigError:
            side_features = None
    manifest = {
        "format": FORMAT, "recfuse": __version__, "model": model_name,
        "class": f"{type(model).__module__}:{type(model).__qualname__}", "task": model.task,
        "dataset": split.dataset.name, "protocol": split.protocol, "seeds": [int(s) for s in seeds],
        "item_tower": tower, "item_text_encoder": item_text_encoder or None, "item_text_format": item_text_format,
        "item_profile_encoder": item_profile_encoder or None,
        "side_features": side_features.to_json() if side_features is not None else None,
        "settings": dict(settings or {}),
    }
    path = Path(folder) / MANIFEST
    write_json(path, manifest)
    return path


# -- reading ----------------------------------------------------------------------------------------------


@dataclass
class ServableRun:
    """A run folder read back: its manifest, the dataset as the model saw it, and which part each of its
    interactions was in (``part``: 0 train, 1 valid, 2 test)."""

    folder: Path
    manifest: dict[str, Any]
    dataset: Dataset
    part: np.ndarray

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in self.manifest["seeds"]]

    @property
    def model_name(self) -> str:
        return str(self.manifest["model"])

    def side_features(self) -> FeatureEncoder | None:
        blocks = self.manifest.get("side_features")
        return FeatureEncoder.from_json(blocks) if blocks else None

    def load_model(self, seed: int | None = None) -> tuple[int, Recommender]:
        """The model of ``seed`` (default: the first seed trained)."""
        seeds = self.seeds
        if seed is None:
            seed = seeds[0]
        if seed not in seeds:
            raise ConfigError(f"{self.folder}: no model for seed {seed}; seeds trained: "
                              f"{', '.join(map(str, seeds))}")
        path = model_dir(self.folder, seed)
        if not path.exists():
            raise DataError(f"the model of seed {seed} is missing (the run folder is incomplete)", path=path)
        cls = get_model_class(self.manifest.get("class") or self.model_name)
        try:
            model = cls.load(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"the model of seed {seed} cannot be read ({type(e).__name__}: {e}): the run folder is "
                            "damaged", path=path) from None
        sizes = {"users": (model.n_users, len(self.dataset.users)), "items": (model.n_items, len(self.dataset.items))}
        wrong = [f"{n} {kind} (the run's dataset has {want})" for kind, (n, want) in sizes.items() if n != want]
        if wrong:
            raise DataError(f"the model of seed {seed} was trained on {' and '.join(wrong)}: it is not this run's "
                            "model", path=path)
        return seed, model


def _features_from_files(meta: list[dict[str, Any]], arrays: Mapping[str, np.ndarray], n_items: int) -> FeatureTable:
    table = FeatureTable(n_items)
    for entry in meta:
        n, name, kind = entry["index"], entry["name"], entry["kind"]
        if kind == "text":
            table.add(Feature(name, "text", values=np.asarray(entry["values"], dtype=object)))
        elif kind == "numeric":
            table.add(Feature(name, "numeric", values=arrays[f"item_feature_{n}_values"]))
        elif kind == "categorical":
            table.add(Feature(name, "categorical", codes=arrays[f"item_feature_{n}_codes"], vocab=entry["vocab"]))
        else:
            table.add(Feature(name, "multi", codes=arrays[f"item_feature_{n}_codes"], vocab=entry["vocab"],
                              offsets=arrays[f"item_feature_{n}_offsets"]))
    return table


def read_run(folder: str | Path) -> ServableRun:
    """Read a run folder written by ``recfuse train --out``; a folder that is not one raises
    :class:`~recfuse.errors.DataError` saying what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("no such run folder", path=folder)
    if not (folder / MANIFEST).is_file():
        hint = ""
        subs = sorted(p.parent.relative_to(folder) for p in folder.glob(f"*/*/{MANIFEST}"))
        if subs:
            hint = f"; servable runs below it: {', '.join(str(s) for s in subs[:5])}"
        raise DataError(f"not a servable run folder (no {MANIFEST}: train it with `recfuse train --out DIR` and "
                        f"serve DIR/<dataset>/<model>){hint}", path=folder)
    for name in (MANIFEST, "dataset/meta.json", "dataset/arrays.npz"):
        if not (folder / name).is_file():
            raise DataError(f"{name} is missing (the run folder is incomplete)", path=folder)
    manifest = read_json(folder / MANIFEST)
    try:
        version, seeds, model = int(manifest.get("format", 0)), [int(s) for s in manifest["seeds"]], manifest["model"]
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"not a run folder's manifest ({type(e).__name__}: {e})", path=folder / MANIFEST) from None
    if version > FORMAT:
        raise DataError(f"{MANIFEST} has format {version}; this recfuse reads up to {FORMAT}", path=folder / MANIFEST)
    if not seeds or not isinstance(model, str):
        raise DataError("names no seed or no model", path=folder / MANIFEST)
    meta = read_json(folder / "dataset" / "meta.json")
    arrays = load_npz(folder / "dataset" / "arrays.npz")
    try:
        users, items = Vocab(meta["users"], "user"), Vocab(meta["items"], "item")
        inter = Interactions(arrays["user"], arrays["item"], arrays.get("rating"), arrays.get("timestamp"))
        features = _features_from_files(meta["item_features"], arrays, len(items))
        dataset = Dataset(meta["name"], users, items, inter, item_features=features,
                          source=str(meta.get("source", "")))
        part = arrays["part"]
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"the run folder's dataset cannot be read ({type(e).__name__}: {e})",
                        path=folder / "dataset") from None
    return ServableRun(folder, manifest, dataset, part)
