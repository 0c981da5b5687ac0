"""The Llama4Rec paper's MovieLens-100K numbers (LLaMA-2 7B), Tables 2-4, and the suite's tables laid out like them.

Table 2 is direct recommendation (HR / NDCG at 3 and 5), Table 3 sequential recommendation, Table 4 rating
prediction (RMSE, MAE; the paper's IFT row is LLaMA alone, one row for all backbones). The suite report puts
each measured backbone's Base, IFT and Llama4Rec beside these, and keeps a row for every backbone of the paper
that is still to run, so a table never looks complete before it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from recfuse.eval.report import markdown_table
from recfuse.llama4rec.config import CONTROLS, LABELS, selection_metric
from recfuse.llama4rec.scaling import always_mixed_label, always_mixed_variant

#: task -> (table number, metrics in the paper's column order)
TABLES: dict[str, tuple[int, tuple[str, ...]]] = {
    "direct": (2, ("hr@3", "ndcg@3", "hr@5", "ndcg@5")),
    "sequential": (3, ("hr@3", "ndcg@3", "hr@5", "ndcg@5")),
    "rating": (4, ("rmse", "mae")),
}

_D = ("hr@3", "ndcg@3", "hr@5", "ndcg@5")
_R = ("rmse", "mae")


def _row(metrics: tuple[str, ...], *values: float) -> dict[str, float]:
    return dict(zip(metrics, values, strict=True))


#: (dataset, backbone) -> variant -> metric -> value, as printed in the paper (ML-100K columns)
PAPER_TABLES: dict[tuple[str, str], dict[str, dict[str, float]]] = {
    ("ml-100k", "mf"): {"base": _row(_D, 0.0455, 0.0325, 0.0690, 0.0420), "ift": _row(_D, 0.0546, 0.0388, 0.0790, 0.0488),
                        "llama4rec": _row(_D, 0.0645, 0.0474, 0.0919, 0.0588)},
    ("ml-100k", "lightgcn"): {"base": _row(_D, 0.0492, 0.0343, 0.0744, 0.0447),
                              "ift": _row(_D, 0.0537, 0.0381, 0.0846, 0.0507),
                              "llama4rec": _row(_D, 0.0647, 0.0476, 0.0967, 0.0608)},
    ("ml-100k", "mixgcf"): {"base": _row(_D, 0.0526, 0.0401, 0.0757, 0.0496),
                            "ift": _row(_D, 0.0617, 0.0452, 0.0906, 0.0570),
                            "llama4rec": _row(_D, 0.0690, 0.0515, 0.0949, 0.0621)},
    ("ml-100k", "sgl"): {"base": _row(_D, 0.0505, 0.0380, 0.0729, 0.0472), "ift": _row(_D, 0.0520, 0.0392, 0.0792, 0.0503),
                         "llama4rec": _row(_D, 0.0632, 0.0479, 0.0917, 0.0596)},
    ("ml-100k", "sasrec"): {"base": _row(_D, 0.0187, 0.0125, 0.0385, 0.0205),
                            "ift": _row(_D, 0.0204, 0.0136, 0.0379, 0.0207),
                            "llama4rec": _row(_D, 0.0238, 0.0155, 0.0449, 0.0240)},
    ("ml-100k", "bert4rec"): {"base": _row(_D, 0.0153, 0.0104, 0.0294, 0.0161),
                              "ift": _row(_D, 0.0174, 0.0119, 0.0326, 0.0100),
                              "llama4rec": _row(_D, 0.0198, 0.0134, 0.0332, 0.0189)},
    ("ml-100k", "cl4srec"): {"base": _row(_D, 0.0243, 0.0143, 0.0436, 0.0222),
                             "ift": _row(_D, 0.0230, 0.0149, 0.0428, 0.0230),
                             "llama4rec": _row(_D, 0.0255, 0.0182, 0.0440, 0.0255)},
    **{("ml-100k", name): {"base": _row(_R, *base), "ift": _row(_R, 1.2792, 0.8940), "llama4rec": _row(_R, *mixed)}
       for name, base, mixed in (("deepfm", (1.0487, 0.8082), (1.0306, 0.7987)),
                                 ("nfm", (1.0284, 0.8005), (1.0189, 0.7961)),
                                 ("dcn", (1.0478, 0.8063), (1.0367, 0.8033)),
                                 ("afm", (1.0471, 0.8035), (1.0340, 0.7996)),
                                 ("xdeepfm", (1.1472, 0.8836), (1.0947, 0.8483)),
                                 ("autoint", (1.0500, 0.8120), (1.0369, 0.8059)))}}

#: the paper's backbones per task, in its tables' order
PAPER_BACKBONES: dict[str, tuple[str, ...]] = {
    "direct": ("mf", "lightgcn", "mixgcf", "sgl"),
    "sequential": ("sasrec", "bert4rec", "cl4srec"),
    "rating": ("deepfm", "nfm", "dcn", "afm", "xdeepfm", "autoint"),
}

VARIANTS = tuple((v, LABELS[v]) for v in ("base", "ift", "llama4rec"))
#: rows of their own under Llama4Rec where a run recorded them: Llama4Rec always mixed (the paper's protocol),
#: and the rating task's controls always mixed (a rating made without an LLM in place of the LLM's answers);
#: each as (the run's variant, the row's key, its label)
ALWAYS_MIXED = tuple((v, always_mixed_variant(v), always_mixed_label(LABELS[v])) for v in ("llama4rec", *CONTROLS))


def headline(dataset: str, backbone: str) -> dict[str, Any] | None:
    """The one-line comparison a run's report prints: the paper's Base and Llama4Rec on the first metric (and
    IFT for rating, where the paper's IFT is LLaMA alone)."""
    table = PAPER_TABLES.get((dataset, backbone))
    if table is None:
        return None
    metric = next(iter(table["base"]))
    out: dict[str, Any] = {"metric": metric, "base": table["base"][metric], "llama4rec": table["llama4rec"][metric]}
    if metric == "rmse":
        out["ift"] = table["ift"][metric]
    return out


def _ours(row: Mapping[str, Any], metric: str, seeds: int) -> str:
    if metric not in row:
        return "-"
    cell = f"{row[metric]:.4f}" + (f" ± {row[metric + '_std']:.4f}" if seeds > 1 and metric + "_std" in row else "")
    if metric + "_impr" in row:
        cell += f" ({row[metric + '_impr']:+.1%})"
    return cell


def paper_tables(dataset: str, measured: Sequence[Mapping[str, Any]], pending: Sequence[tuple[str, str]]) -> str:
    """Markdown: Tables 2-4 of the paper with the suite's results beside them.

    ``measured``: one mapping per finished run with ``task``, ``backbone``, ``rows`` (the run's summary rows:
    variant, metric means, ``_std``, ``_impr``, ``_p_users``, ``_p_seeds``), ``seeds`` and ``seconds`` (the
    stage seconds of every seed, summed), and optionally ``always_mixed`` (the same rows with the LLM always
    mixed in, shown as a row of its own under Llama4Rec) and ``ranking`` (a pointwise run is a row of its own,
    ``"lightgcn (pointwise)"``); ``pending``: (task, backbone) of the runs still to come. Every table and every
    backbone of the paper keeps its rows: measured, still to run, or not in this suite."""
    def row_name(m: Mapping[str, Any]) -> str:
        ranking = m.get("ranking") or "listwise"
        return m["backbone"] if ranking == "listwise" else f"{m['backbone']} ({ranking})"

    by_key = {(m["task"], row_name(m)): m for m in measured}
    if len(by_key) < len(measured):
        raise ValueError("two runs of one task, backbone and ranking in one dataset's tables")
    waiting = set(pending)
    out = []
    ift_best: list[str] = []  # backbones where IFT, not Base, is the best baseline (the paper tests against it)
    for task, (number, metrics) in TABLES.items():
        select = selection_metric(task)  # what the alphas are chosen on by default: the p column
        rows = []
        backbones = list(PAPER_BACKBONES[task]) + sorted({b for t, b in [*by_key, *waiting]
                                                          if t == task and b not in PAPER_BACKBONES[task]})
        for backbone in backbones:
            paper = PAPER_TABLES.get((dataset, backbone.split(" (")[0]), {})
            run = by_key.get((task, backbone))
            status = ("still to run" if (task, backbone) in waiting else "not in this suite") if run is None else \
                f"{run['seeds']} seed(s), {run['seconds'] / 60:.0f} min"
            ours = {r["variant"]: r for r in run["rows"]} if run is not None else {}
            base, ift = (ours.get(v, {}).get(select) for v in ("base", "ift"))
            if base is not None and ift is not None and (ift < base if select in _R else ift > base):
                ift_best.append(f"{task} {backbone}")
            mixed = {r["variant"]: r for r in run.get("always_mixed") or []} if run is not None else {}
            for source, key, _ in ALWAYS_MIXED:
                if source in mixed:
                    ours[key] = mixed[source]
            for variant, label in [*VARIANTS, *[(key, label) for _, key, label in ALWAYS_MIXED if key in ours]]:
                mine = ours.get(variant, {})
                row: dict[str, Any] = {"backbone": backbone if variant == "base" else "", "method": label}
                for m in metrics:
                    row[m] = _ours(mine, m, run["seeds"]) if run is not None else "-"
                    row[f"paper {m}"] = f"{paper[variant][m]:.4f}" if variant in paper else "-"
                row["p over users"] = f"{mine[select + '_p_users']:.3g}" if select + "_p_users" in mine else ""
                row["p over seeds"] = f"{mine[select + '_p_seeds']:.3g}" if select + "_p_seeds" in mine else ""
                row["run"] = status if variant == "base" else ""
                rows.append(row)
        out.append(f"### Table {number}: {task} on {dataset} (ours, mean ± std over seeds, in brackets the improvement over our Base, positive: better; "
                   f"paper: LLaMA-2 7B; p: {select}, paired t-test against Base)\n\n" + markdown_table(rows))
    if measured:
        out.append("*p*: against Base, " + (
            "the best baseline on every measured backbone (IFT below it), as the paper tests against the best baseline."
            if not ift_best else f"while IFT is the better baseline on {', '.join(ift_best)} (the paper tests "
                                 "against the best baseline: there, compare against the IFT row too)."))
    if any(r.get("always_mixed") for r in measured):
        out.append("*Llama4Rec always mixed*: the alphas chosen on validation mixed in whatever the validation guard "
                   "decided, as the paper's Llama4Rec always is (analysis only; our Llama4Rec row keeps the LLM's "
                   "weight only where validation supports it).")
    if any(m["variant"] in CONTROLS for r in measured for m in r.get("always_mixed") or []):
        out.append("*Mean mix / Bias mix (no LLM) always mixed*: controls for Llama4Rec always mixed: the training "
                   "data's mean rating (mean mix), or the mean plus damped user and item biases (bias mix), mixed "
                   "in instead of the LLM's answers, alphas chosen on validation in the same way. What Llama4Rec "
                   "gains beyond them is what the LLM adds over shrinking towards the mean, or over a baseline "
                   "predictor.")
    return "\n".join(out)


#: Table 5 of the paper: the ablations, LightGCN on ML-1M (the paper runs them on ML-1M and BookCrossing only),
#: variant -> (HR@3, NDCG@3)
PAPER_ABLATIONS: dict[str, tuple[float, float]] = {
    "base": (0.0283, 0.0203), "ift": (0.0268, 0.0193), "wo_da": (0.0294, 0.0209), "wo_pa": (0.0277, 0.0199),
    "wo_aa": (0.0298, 0.0218), "llama4rec": (0.0304, 0.0222)}
PAPER_ABLATIONS_WHERE = "LightGCN on ML-1M"
ABLATION_VARIANTS = tuple((v, LABELS[v]) for v in ("base", "ift", "wo_da", "wo_pa", "wo_aa", "llama4rec"))
ABLATION_METRICS = ("hr@3", "ndcg@3")


def has_ablations(variants: Sequence[str]) -> bool:
    """Whether a run's variants include an ablation of Table 5 (w/o DA, w/o PA, w/o AA)."""
    return any(v in variants for v in ("wo_da", "wo_pa", "wo_aa"))


def ablation_table(dataset: str, backbone: str, rows: Sequence[Mapping[str, Any]],
                   always_mixed: Sequence[Mapping[str, Any]], weight_kept: Mapping[str, int], seeds: int) -> str:
    """Markdown: Table 5 of the paper (ablations) with one run's results beside it: each variant as run (the
    LLM's weight kept only where validation supports it) and always mixed (the paper's protocol, analysis only),
    the seeds on which validation kept the LLM's weight, and the paper's numbers with their change against its
    LightGCN.

    ``rows`` / ``always_mixed``: the run's summary rows (:func:`~recfuse.llama4rec.report.summary_rows`) as run
    and always mixed; ``weight_kept``: mixing variant -> seeds on which the guard kept the LLM's weight."""
    ours = {r["variant"]: r for r in rows}
    mixed = {r["variant"]: r for r in always_mixed}
    paper_base = PAPER_ABLATIONS["base"]
    table = []
    for variant, label in ABLATION_VARIANTS:
        if variant not in ours:
            continue
        row: dict[str, Any] = {"method": label}
        for m in ABLATION_METRICS:
            row[m] = _ours(ours[variant], m, seeds)
        mixes = variant not in ("base", "ift")
        # Base and IFT mix nothing, and a run from before the guard always mixed: the same as run
        same = not mixes or (variant not in weight_kept and variant not in mixed)
        always = ours[variant] if same else mixed.get(variant)
        for m in ABLATION_METRICS:
            row[f"{m} always mixed"] = "-" if always is None else _ours(always, m, seeds)
        p = always.get("ndcg@3_p_users") if always is not None and mixes else None
        row["p (ndcg@3 always mixed, over users)"] = "" if p is None else f"{p:.3g}"
        row["LLM weight kept"] = ("" if not mixes else f"{weight_kept[variant]} of {seeds} seeds"
                                  if variant in weight_kept else "always (run without the guard)")
        for i, m in enumerate(ABLATION_METRICS):
            value = PAPER_ABLATIONS[variant][i]
            row[f"paper {m}"] = f"{value:.4f}" + ("" if variant == "base" else f" ({value / paper_base[i] - 1:+.1%})")
        table.append(row)
    return (f"### Table 5: ablations, {backbone} on {dataset} (ours, mean ± std over seeds, in brackets the improvement over our Base, positive: better; "
            f"always mixed: the alphas chosen on validation mixed in whatever the guard decided, as the paper "
            f"does, analysis only; paper: LLaMA-2 7B, {PAPER_ABLATIONS_WHERE})\n\n" + markdown_table(table))
