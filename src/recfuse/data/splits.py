"""Train / validation / test splits without leakage.

* :func:`leave_one_out` - per user, by time: last interaction test, second last validation, rest train.
* :func:`temporal` - one global time line cut into a train, a validation and a test period.
* :func:`predefined` - the dataset's own train / validation / test files; without a validation file,
  :func:`carve_validation` takes validation from the training snapshot (never from test).
* :func:`kcore` - iterative k-core filtering (applied to a dataset before splitting).
* :func:`check_split` - refuses, naming why, a split no model can be trained, selected and tested on
  (:func:`make_split` applies it).

A :class:`Split` knows, for each evaluation stage, which items a user has already seen (history, to be
excluded from ranking) and which are the held-out truth. Model selection uses ``valid`` only; the test
interactions never reach training or selection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np
import scipy.sparse as sp

from recfuse.data.dataset import SPLIT_CODES, Dataset, Interactions
from recfuse.data.sequences import time_order
from recfuse.errors import ConfigError, DataError
from recfuse.io import fingerprint

log = logging.getLogger(__name__)
Stage = Literal["valid", "test"]


@dataclass
class Split:
    """A dataset divided into train / valid / test interactions (internal ids of ``dataset``)."""

    dataset: Dataset
    train: Interactions
    valid: Interactions
    test: Interactions
    protocol: str
    info: dict = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return self.dataset.n_users

    @property
    def n_items(self) -> int:
        return self.dataset.n_items

    @cached_property
    def train_matrix(self) -> sp.csr_matrix:
        """Binary user x item CSR matrix of the training interactions."""
        return self.train.to_csr(self.n_users, self.n_items)

    def part(self, stage: Stage) -> Interactions:
        if stage not in ("valid", "test"):
            raise ConfigError(f"stage must be 'valid' or 'test', not {stage!r}")
        return self.valid if stage == "valid" else self.test

    def history(self, stage: Stage) -> sp.csr_matrix:
        """Items known before ``stage``: train for validation, train + valid for test."""
        if stage == "valid":
            return self.train_matrix
        return self.train.concat(self.valid).to_csr(self.n_users, self.n_items) if len(self.valid) \
            else self.train_matrix

    def ground_truth(self, stage: Stage) -> sp.csr_matrix:
        """Held-out items of ``stage`` as a binary CSR matrix (items already in the history removed)."""
        truth = self.part(stage).to_csr(self.n_users, self.n_items)
        seen = self.history(stage)
        truth = truth - truth.multiply(seen)
        truth.eliminate_zeros()
        return truth.tocsr()

    def eval_users(self, stage: Stage) -> np.ndarray:
        """Users with at least one held-out item in ``stage`` (every one of them is evaluated)."""
        return np.flatnonzero(np.diff(self.ground_truth(stage).indptr) > 0)

    @cached_property
    def known_matrix(self) -> sp.csr_matrix:
        """Every user's items in any part (train, valid, test): what an augmentation must never propose
        as new, so that no held-out item enters training data, not even as a negative."""
        everything = self.train.concat(self.valid).concat(self.test)
        return everything.to_csr(self.n_users, self.n_items)

    @cached_property
    def train_item_mask(self) -> np.ndarray:
        """True for items with at least one training interaction (warm items)."""
        return self.train.counts_per_item(self.n_items) > 0

    def cold_items(self, stage: Stage = "test") -> np.ndarray:
        """Internal ids of items that occur in ``stage`` but never in training."""
        return np.setdiff1d(np.unique(self.part(stage).item), np.flatnonzero(self.train_item_mask))

    def fingerprint(self) -> str:
        """A content hash of the three parts, each interaction with its rating and time (stage cache keys)."""
        return fingerprint(self.dataset.fingerprint(), *(a if a is not None else "" for part in
                                                         (self.train, self.valid, self.test)
                                                         for a in (part.user, part.item, part.rating, part.timestamp)))

    def summary(self) -> dict:
        return {
            "protocol": self.protocol,
            "train": len(self.train), "valid": len(self.valid), "test": len(self.test),
            "valid_users": int(len(self.eval_users("valid"))) if len(self.valid) else 0,
            "test_users": int(len(self.eval_users("test"))),
            "cold_test_items": int(len(self.cold_items("test"))),
            **self.info,
        }


def _order(dataset: Dataset, order: Literal["time", "random"], seed: int) -> np.ndarray:
    """Positions of interactions sorted by user, then by time (or a seeded random order)."""
    inter = dataset.interactions
    n = len(inter)
    if order == "time":
        if inter.timestamp is None:
            raise DataError("leave-one-out by time needs timestamps; this dataset has none "
                            "(use order='random' for a seeded random order)", field="timestamp")
        return time_order(inter)  # ties in time keep file order
    rng = np.random.default_rng(seed)
    return np.lexsort((rng.permutation(n), inter.user))


def leave_one_out(dataset: Dataset, order: Literal["time", "random", "auto"] = "auto", seed: int = 0) -> Split:
    """Per user: last interaction -> test, second last -> valid, the rest -> train.

    Users with two interactions give one to train and one to test; users with one keep it in train.
    ``order='auto'`` uses timestamps when the data has them and a seeded random order otherwise.
    """
    if order == "auto":
        order = "time" if dataset.has_timestamps else "random"
    if order not in ("time", "random"):
        raise ConfigError(f"order must be 'time', 'random' or 'auto', not {order!r}")
    inter = dataset.interactions
    pos = _order(dataset, order, seed)
    users = inter.user[pos]
    counts = np.bincount(users, minlength=dataset.n_users)
    # rank from the end within each user's block: 0 = last
    ends = np.cumsum(counts)[users]
    from_end = ends - 1 - np.arange(len(pos))
    n_u = counts[users]
    is_test = (from_end == 0) & (n_u >= 2)
    is_valid = (from_end == 1) & (n_u >= 3)
    is_train = ~(is_test | is_valid)
    return Split(dataset, inter.take(pos[is_train]), inter.take(pos[is_valid]), inter.take(pos[is_test]),
                 protocol=f"leave-one-out ({order}{'' if order == 'time' else f', seed {seed}'})",
                 info={"users_without_test": int((counts < 2).sum())})


def temporal(dataset: Dataset, valid_start: float | None = None, test_start: float | None = None,
             fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), drop_cold_users: bool = True,
             inclusive: bool = False) -> Split:
    """One global time line: train period, validation period, test period.

    Cut points are timestamps (``valid_start``, ``test_start``) or, when not given, the time quantiles
    of ``fractions``. By default a cut point is the last timestamp of the period before it (validation holds
    what comes *after* ``valid_start``); with ``inclusive`` (both cut points given: ``--valid-start`` and
    ``--test-start`` on the command line) it is the first timestamp of its period (validation holds what
    comes *at or after* ``valid_start``). Held-out users with no training interaction cannot be scored by an
    ID-based model; with ``drop_cold_users`` their held-out interactions are removed and counted in ``info``.
    """
    inter = dataset.interactions
    if inter.timestamp is None:
        raise DataError("a temporal split needs timestamps; this dataset has none", field="timestamp")
    if abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ConfigError(f"fractions must be non-negative and sum to 1, got {fractions}")
    ts = inter.timestamp
    info: dict = {}
    if inclusive and (valid_start is None or test_start is None):
        raise ConfigError("cut points by value need both the validation start and the test start "
                          "(--valid-start and --test-start)")
    if valid_start is None or test_start is None:
        q = np.quantile(ts, [fractions[0], fractions[0] + fractions[1]], method="lower")
        valid_start = q[0] if valid_start is None else valid_start
        test_start = q[1] if test_start is None else test_start
        info["fractions"] = [float(f) for f in fractions]
    if valid_start > test_start:
        raise ConfigError(f"valid_start ({valid_start}) is after test_start ({test_start})")
    if inclusive:  # cut points are the first timestamps of validation and test
        is_train = ts < valid_start
        is_valid = (ts >= valid_start) & (ts < test_start)
        is_test = ts >= test_start
    else:  # strict inequalities keep equal timestamps on the earlier side
        is_train = ts <= valid_start
        is_valid = (ts > valid_start) & (ts <= test_start)
        is_test = ts > test_start
    info.update({"valid_start": float(valid_start), "test_start": float(test_start), "cut": "from" if inclusive
                 else "after", "distinct_timestamps": int(len(np.unique(ts))),
                 "last_timestamp": float(ts.max()) if len(ts) else 0.0,
                 "first_timestamp": float(ts.min()) if len(ts) else 0.0})
    if drop_cold_users:
        warm = np.bincount(inter.user[is_train], minlength=dataset.n_users) > 0
        cold_v = is_valid & ~warm[inter.user]
        cold_t = is_test & ~warm[inter.user]
        info["dropped_cold_user_valid_interactions"] = int(cold_v.sum())
        info["dropped_cold_user_test_interactions"] = int(cold_t.sum())
        is_valid &= ~cold_v
        is_test &= ~cold_t
    order = np.lexsort((np.arange(len(ts)), ts))
    return Split(dataset, inter.take(order[is_train[order]]), inter.take(order[is_valid[order]]),
                 inter.take(order[is_test[order]]), protocol="temporal", info=info)


def predefined(dataset: Dataset, drop_cold_users: bool = False) -> Split:
    """The split the dataset came with (its own train / valid / test files).

    With ``drop_cold_users``, held-out interactions of users without a training interaction are removed and
    counted in ``info`` (as :func:`temporal` does).
    """
    if dataset.predefined_split is None:
        raise DataError("this dataset has no predefined split (it was not loaded from train/valid/test files)",
                        path=dataset.source or dataset.name)
    code = dataset.predefined_split
    inter = dataset.interactions
    is_train, is_valid, is_test = (code == SPLIT_CODES[p] for p in ("train", "valid", "test"))
    info: dict = {}
    if drop_cold_users:
        warm = np.bincount(inter.user[is_train], minlength=dataset.n_users) > 0
        for name, part in (("valid", is_valid), ("test", is_test)):
            cold = part & ~warm[inter.user]
            info[f"dropped_cold_user_{name}_interactions"] = int(cold.sum())
            part &= ~cold
    return Split(dataset, inter.take(is_train), inter.take(is_valid), inter.take(is_test), protocol="predefined",
                 info=info)


#: the share of the training snapshot that becomes validation where a predefined split has no validation file
VALID_SHARE = 0.1


def carve_validation(split: Split, share: float = VALID_SHARE, seed: int = 0) -> Split:
    """``split`` with a validation part taken from its training part (the test part is never touched).

    The rule: where the training interactions' timestamps differ, validation is the latest ``share`` of
    them by time (those after the ``1 - share`` quantile); otherwise (one timestamp, or none, or a latest share
    that comes out empty below) a seeded random ``share`` of each user's training interactions (``share x n``
    of a user's ``n`` in expectation: its integer part, and one more with the probability of the remainder;
    never a user's last one). A candidate whose user or item would be left without a training
    interaction stays in training, so that the training part keeps every user and item of the training
    snapshot: validation ranks items the model was trained on, and zero-shot test items remain exactly the
    test items absent from the training snapshot. The rule and its outcome are recorded in ``info``.
    """
    if not 0 < share < 1:
        raise ConfigError(f"the validation share of the training snapshot must be between 0 and 1, not {share}")
    train = split.train
    n = len(train)

    def keep_warm(cand: np.ndarray) -> np.ndarray:
        """Candidates whose user and item keep a training interaction outside the candidates."""
        warm_u = np.bincount(train.user[~cand], minlength=split.n_users) > 0
        warm_i = np.bincount(train.item[~cand], minlength=split.n_items) > 0
        return cand & warm_u[train.user] & warm_i[train.item]

    cand = np.zeros(n, dtype=bool)
    is_valid = cand
    rule = ""
    if train.timestamp is not None and n and len(np.unique(train.timestamp)) > 1:
        cut = np.quantile(train.timestamp, 1 - share, method="lower")
        cand = train.timestamp > cut
        is_valid = keep_warm(cand)
        rule = f"the latest {share:g} of the training snapshot by time (after {cut:g})"
    if not is_valid.any():  # one timestamp, or the latest share is all new users or items
        rng = np.random.default_rng(seed)
        pos = np.lexsort((rng.permutation(n), train.user))  # each user's interactions in a seeded order
        users = train.user[pos]
        counts = np.bincount(users, minlength=split.n_users)
        rank = np.arange(n) - (np.cumsum(counts) - counts)[users]
        # share x n whole interactions per user in expectation: the integer part, one more with the remainder's
        # probability; never a user's last one
        exact = share * counts
        take = np.minimum(counts - 1, np.floor(exact).astype(int) + (rng.random(len(counts)) < exact % 1))
        cand = np.zeros(n, dtype=bool)
        cand[pos[rank < take[users]]] = True
        is_valid = keep_warm(cand)
        rule = f"a seeded {share:g} of each user's training interactions (seed {seed})"
    info = {**split.info, "validation": rule, "validation_from_train": int(is_valid.sum()),
            "validation_kept_in_train": int((cand & ~is_valid).sum())}
    return Split(split.dataset, train.take(~is_valid), train.take(is_valid), split.test,
                 protocol=f"{split.protocol}, validation carved from train", info=info)


def cold_start_items(split: Split, stage: Stage = "test") -> Split:
    """The zero-shot view of a split: ``stage`` keeps only interactions with items never seen in training."""
    cold = np.zeros(split.n_items, dtype=bool)
    cold[split.cold_items(stage)] = True
    part = split.part(stage)
    kept = part.take(cold[part.item])
    parts = {"valid": split.valid, "test": split.test, stage: kept}
    return Split(split.dataset, split.train, parts["valid"], parts["test"],
                 protocol=f"{split.protocol}, cold-start items in {stage}",
                 info={**split.info, "cold_items": int(cold.sum())})


def kcore(dataset: Dataset, k: int = 5, user_k: int | None = None, item_k: int | None = None) -> Dataset:
    """Iteratively drop users and items with fewer than ``k`` interactions until none is left."""
    user_k = k if user_k is None else user_k
    item_k = k if item_k is None else item_k
    inter = dataset.interactions
    keep = np.ones(len(inter), dtype=bool)
    while True:
        uc = np.bincount(inter.user[keep], minlength=dataset.n_users)
        ic = np.bincount(inter.item[keep], minlength=dataset.n_items)
        new_keep = keep & (uc[inter.user] >= user_k) & (ic[inter.item] >= item_k)
        if new_keep.sum() == keep.sum():
            break
        keep = new_keep
    if not keep.any():
        raise DataError(f"the dataset is empty after {user_k}/{item_k}-core filtering "
                        f"(users need {user_k}, items {item_k} interactions)", path=dataset.source or dataset.name)
    out = dataset.filter(keep)
    out.notes.append(f"{user_k}/{item_k}-core filtered: {len(inter) - int(keep.sum())} interactions removed")
    return out


def _why_empty(split: Split, stage: Stage) -> str:
    """Why ``stage`` of ``split`` holds no interaction, in the protocol's terms."""
    protocol = split.protocol
    if protocol.startswith("leave-one-out"):
        return ("no user has 3 or more interactions (leave-one-out holds out a validation item only from those)"
                if stage == "valid" else
                "no user has 2 or more interactions (leave-one-out keeps a user's only interaction for training)")
    if protocol.startswith("temporal"):
        collapsed = _collapsed_quantiles(split, stage)
        if collapsed:
            return collapsed
        cut = split.info.get("valid_start" if stage == "valid" else "test_start")
        if split.info.get("cut") == "from":
            end = split.info["test_start"] if stage == "valid" else None
            return (f"no interaction falls in the {'validation' if stage == 'valid' else 'test'} period (from "
                    f"{cut:g}{f' to before {end:g}' if end is not None else ''}; the timestamps run from "
                    f"{split.info['first_timestamp']:g} to {split.info['last_timestamp']:g}) from a user seen in "
                    "training (change --valid-start/--test-start)")
        dropped = split.info.get(f"dropped_cold_user_{stage}_interactions", 0)
        return (f"no interaction falls in the {'validation' if stage == 'valid' else 'test'} period (after "
                f"{cut:g}) from a user seen in training" + (f"; {dropped} from users without training "
                                                            "interactions were dropped" if dropped else "")
                + " (change the fractions, or the cut points)")
    if protocol.startswith("predefined"):
        if stage == "valid" and "carved" in protocol:
            kept = split.info.get("validation_kept_in_train", 0)
            why = (f"{kept} candidate(s) stayed in training because their user or item has no other training "
                   "interaction" if kept else "the users have too few training interactions for that share to take "
                   "any")
            return (f"the dataset has no validation file, and {split.info.get('validation', 'carving')} left "
                    f"none: {why} (add a validation file, raise --valid-share, or use more data)")
        dropped = split.info.get(f"dropped_cold_user_{stage}_interactions", 0)
        if dropped:
            return (f"each of the {dropped} interaction(s) of the dataset's {'validation' if stage == 'valid' else 'test'} "
                    "file is of a user without training interactions (left out: an ID-based model cannot score "
                    "them)")
        return f"the dataset's {'validation' if stage == 'valid' else 'test'} file holds no interaction"
    return "it holds no interaction"


def _collapsed_quantiles(split: Split, stage: Stage) -> str:
    """Why ``stage`` of a temporal split by fractions is empty because its quantiles fall on one timestamp
    (e.g. a dataset whose timestamps are two snapshot days); "" where that is not why."""
    info = split.info
    if "fractions" not in info:
        return ""
    f = info["fractions"]
    q1, q2, last = info["valid_start"], info["test_start"], info["last_timestamp"]
    empty = [name for name, gone in (("validation", q1 == q2), ("test", q2 == last)) if gone]
    if ("validation" if stage == "valid" else "test") not in empty:
        return ""
    qs = f"{f[0]:g}/{f[0] + f[1]:g}"
    where = (f"the {qs} quantiles are both {q1:g}" if q1 == q2 else f"the {qs} quantiles are {q1:g} and {q2:g}")
    if q2 == last and q1 != q2:
        where += " (the last timestamp)"
    n = info["distinct_timestamps"]
    values = f"fall in {n} distinct values" if n > 1 else f"are one value ({last:g})"
    return (f"all timestamps {values}; {where}, so "
            f"{' and '.join(empty)} {'are' if len(empty) > 1 else 'is'} empty: use --split predefined or "
            "--valid-start/--test-start")


def _why_no_train(split: Split) -> str:
    protocol, info = split.protocol, split.info
    if protocol.startswith("temporal") and info.get("cut") == "from":
        return (f": every interaction is at or after the validation start {info['valid_start']:g} (the timestamps "
                f"start at {info['first_timestamp']:g})")
    if protocol.startswith("predefined"):
        return ": the dataset's train file holds no interaction"
    return ""


def check_split(split: Split) -> Split:
    """``split`` if a model can be trained, selected and tested on it; otherwise a
    :class:`~recfuse.errors.DataError` naming why.

    Training must hold an interaction, the test part must hold an item that some user does not already have
    in training or validation (that user is evaluated), and so must the validation part (early stopping and
    model selection read it). A predefined split without a validation file is allowed with a warning (the
    models then train all their epochs), since the dataset's own files decide it.
    """
    where = split.dataset.source or split.dataset.name
    if len(split.train) == 0:
        raise DataError(f"the {split.protocol} split leaves no training interaction{_why_no_train(split)}",
                        path=where)
    for stage in ("test", "valid"):
        part = split.part(stage)
        what = "test" if stage == "test" else "validation"
        if len(part) == 0:
            if (stage == "valid" and split.protocol == "predefined"  # valid_share=0: kept without validation
                    and not split.info.get("dropped_cold_user_valid_interactions")):  # (not a file emptied)
                log.warning("%s: the predefined split has no validation part: models train all their epochs, with "
                            "no early stopping", where)
                continue
            raise DataError(f"the {split.protocol} split has no {what} interaction: {_why_empty(split, stage)}",
                            path=where)
        evaluated = len(split.eval_users(stage))
        if evaluated == 0:
            raise DataError(f"no user can be evaluated on the {what} part of the {split.protocol} split: each of its "
                            f"{len(part)} interaction(s) is of an item its user already has earlier (repeated "
                            "interactions), which the ranking leaves out", path=where)
        repeats_only = len(np.unique(part.user)) - evaluated
        if repeats_only:  # said, never skipped quietly: the summary of every result holds the count
            split.info[f"{stage}_users_with_repeats_only"] = repeats_only
            log.warning("%s: %d user(s) of the %s part are not evaluated: each of their held-out items is one they "
                        "already have earlier (a repeat), which the ranking leaves out (%d users are evaluated)",
                        where, repeats_only, what, evaluated)
    return split


def make_split(dataset: Dataset, protocol: str = "loo", *, seed: int = 0, valid_share: float = VALID_SHARE,
               **kwargs) -> Split:
    """Split by name: ``loo`` (leave-one-out), ``temporal``, ``predefined``; checked by :func:`check_split`.

    ``kwargs`` go to the protocol's function (e.g. ``valid_start``, ``test_start``, ``inclusive``,
    ``fractions`` for ``temporal``). A predefined split without a validation file gets one carved from its
    training snapshot (:func:`carve_validation`, ``valid_share`` of it, seeded by ``seed``); ``valid_share=0``
    keeps it without validation (allowed with a warning: no early stopping).
    """
    if protocol in ("loo", "leave-one-out"):
        return check_split(leave_one_out(dataset, seed=seed, **kwargs))
    if protocol == "temporal":
        return check_split(temporal(dataset, **kwargs))
    if protocol == "predefined":
        split = predefined(dataset, **kwargs)
        had_valid = split.info.get("dropped_cold_user_valid_interactions", 0) > 0  # a file, emptied: an error
        if len(split.valid) == 0 and valid_share > 0 and len(split.train) and not had_valid:
            split = carve_validation(split, valid_share, seed)
        return check_split(split)
    raise ConfigError(f"unknown split protocol {protocol!r} (choose loo, temporal or predefined)")
