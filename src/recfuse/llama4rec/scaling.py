"""The scaling studies (Llama4Rec section 5.4, L12): a suite with axes (the number of instructions, the LLM)
summarised as one row per (task, backbone, llm, ranking, instructions, variant, seed), with figures like the
paper's (a pointwise-ranking run is a line of its own beside its LLM's listwise one, and so is a run that
differs in any other setting, e.g. an axis ``sft.lora_dropout``: its row's ``setting`` names it). Each mixing variant also
has a ``<variant>_always_mixed`` row: its chosen alphas mixed in whatever the validation guard decided (the
paper's protocol; analysis only).

Written by the suite report where a suite has axes (:func:`recfuse.config.load_suite`):

* ``summary.json``: the rows, with ``hr@3, ndcg@3, hr@5, ndcg@5, hr@10`` (top-k) or ``rmse, mae`` (rating);
* ``learning.json``: is the tuned LLM learning? its answers alone per point (top-1 against 1/k', the loss on
  the answer letter against ln k'; :meth:`recfuse.llama4rec.tasks.Task.diagnostics`);
* ``scaling.md`` and ``scaling_<task>-<backbone>.png``: metric against the number of instructions, one line
  per LLM and variant, as the change against Base on the same seeds (mean and standard deviation over seeds of
  the paired difference), so Base is the horizontal line at 0 whichever seeds a point has (points with
  different seeds have different Bases: one Base line over them all would make equal runs look apart);
  ``learning_<task>-<backbone>.png``: the LLM's top-1 accuracy and answer loss against their chance levels and
  what following the backbone's order gives (its first place; the entropy of the answer's place in its list).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from recfuse.eval.plots import pyplot, save_figure
from recfuse.eval.report import markdown_table
from recfuse.io import write_json, write_text
from recfuse.llama4rec.config import selection_metric
from recfuse.llm.embedded import DEFAULT_PACKAGED
from recfuse.method import RESULT_NEUTRAL

TOPK_KEYS = ("hr@3", "ndcg@3", "hr@5", "ndcg@5", "hr@10")
RATING_KEYS = ("rmse", "mae")
#: the diagnostics calls that say most about each LLM (LLM/backbone/stage): IFT's alone on Base's lists at test,
#: Llama4Rec's on validation (on whichever backbone it mixed with)
LEARNING_CALLS = {"ift": ("ift", "test"), "llama4rec": ("pa", "valid")}


def llm_label(llm: dict[str, Any]) -> str:
    """A short name for the LLM of a stored config: the packaged model's name, or the model's folder name."""
    if llm.get("backend", "embedded") == "embedded":
        return str(llm.get("model") or DEFAULT_PACKAGED)
    return Path(str(llm.get("model") or llm.get("backend"))).name


def ranking_of(cfg: dict[str, Any]) -> str | None:
    """How the LLM re-ranks in a stored config (listwise / pointwise); None for the rating task."""
    return None if cfg["task"] == "rating" else str(cfg.get("ranking") or "listwise")


def line_label(row: dict[str, Any]) -> str:
    """The figure line and table label of a row's LLM: its name, with the ranking where it is not listwise and
    the other settings its line differs in (:func:`line_settings`)."""
    notes = (["pointwise"] if row.get("ranking") == "pointwise" else []) + ([row["setting"]] if row.get("setting") else [])
    return row["llm"] + (f" ({', '.join(notes)})" if notes else "")


#: what a scaling line is told apart by already, or what changes no result
LINE_KEYS = frozenset({"task", "backbone", "ranking", "instructions", *RESULT_NEUTRAL})


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted names -> values."""
    flat: dict[str, Any] = {}
    for k, v in d.items():
        flat.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return flat


def line_settings(configs: list[dict[str, Any]]) -> list[str]:
    """Per config, the settings (``name=value``, dotted names) in which it differs from another config of the same
    task, backbone, LLM and ranking, the number of instructions aside: a suite axis such as ``sft.lora_dropout``,
    or two runs side by side. Without them such points would pool into one line and their seeds into one mean."""
    flat = [_flat(c) for c in configs]
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for i, c in enumerate(configs):
        groups[c["task"], c["backbone"], llm_label(c["llm"]), ranking_of(c)].append(i)
    labels = [""] * len(configs)
    for members in groups.values():
        names = sorted(set().union(*(flat[i] for i in members)) - LINE_KEYS)
        varying = [n for n in names if len({json.dumps(flat[i].get(n), sort_keys=True, default=str)
                                             for i in members}) > 1]
        for i in members:
            labels[i] = ", ".join(f"{n}={json.dumps(flat[i].get(n), default=str)}" for n in varying)
    return labels


def summary_rows(configs: list[dict[str, Any]], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task, backbone, llm, ranking, instructions, variant, seed) from the runs' configs and
    results.json; where runs of one task, backbone, LLM and ranking differ in other settings, a ``setting`` key
    says in which (:func:`line_settings`)."""
    rows = []
    for cfg, res, setting in zip(configs, results, line_settings(configs)):
        keys = RATING_KEYS if cfg["task"] == "rating" else TOPK_KEYS
        for seed in res["seeds"]:
            for variant, v in seed["variants"].items():
                row: dict[str, Any] = {"task": cfg["task"], "backbone": cfg["backbone"], "llm": llm_label(cfg["llm"]),
                                       "ranking": ranking_of(cfg), "instructions": int(cfg["instructions"]),
                                       "variant": variant, "seed": int(seed["seed"])}
                if setting:
                    row["setting"] = setting
                row.update({k: v["metrics"].get(k) for k in keys})
                rows.append(row)
                if "always_mixed_metrics" in v:  # the paper's protocol beside the guard's (analysis only)
                    rows.append({**row, "variant": always_mixed_variant(variant),
                                 **{k: v["always_mixed_metrics"].get(k) for k in keys}})
    return rows


def always_mixed_label(label: str) -> str:
    """How reports name a mixing variant (by its label, e.g. "Llama4Rec") with its chosen alphas always mixed in,
    whatever the validation guard decided (the paper's protocol; analysis only)."""
    return f"{label} always mixed"


def always_mixed_variant(variant: str) -> str:
    """The summary's name for a mixing variant with its chosen alphas always mixed in, whatever the
    validation guard decided (the paper's protocol; analysis only)."""
    return f"{variant}_always_mixed"


def learning_rows(configs: list[dict[str, Any]], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task, backbone, llm, instructions, seed, call) of the tuned LLM's answers alone."""
    rows = []
    for cfg, res, setting in zip(configs, results, line_settings(configs)):
        for seed in res["seeds"]:
            for call, d in sorted(seed.get("llm", {}).get("diagnostics", {}).items()):
                rows.append({"task": cfg["task"], "backbone": cfg["backbone"], "llm": llm_label(cfg["llm"]),
                             "ranking": ranking_of(cfg), "instructions": int(cfg["instructions"]),
                             **({"setting": setting} if setting else {}),
                             "seed": int(seed["seed"]), "call": call, **d})
    return rows


def _mean_std(values: list[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    return (float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0) if v.size else (float("nan"), 0.0)


def write_scaling(out: Path, configs: list[dict[str, Any]], results: list[dict[str, Any]]) -> list[Path]:
    """summary.json, learning.json, scaling.md and the figures in ``out``; returns the files written."""
    rows = summary_rows(configs, results)
    learning = learning_rows(configs, results)
    write_json(out / "summary.json", rows)
    write_json(out / "learning.json", learning)
    written = [out / "summary.json", out / "learning.json"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r["task"], r["backbone"]].append(r)
    md = ["# Llama4Rec scaling study", "",
          "Mean ± std over seeds at each point, and in brackets the mean change against Base on the same seeds "
          "(paired by seed). The figures beside this file plot that change (Base is the line at 0). "
          "summary.json holds every seed; learning.json the tuned LLM's answers alone. "
          "*llama4rec_always_mixed*: Llama4Rec with the alphas chosen on validation always mixed in, whatever "
          "the validation guard decided (the paper's protocol; analysis only, never a choice).", ""]
    for (task, backbone), group in sorted(groups.items()):
        keys = RATING_KEYS if task == "rating" else TOPK_KEYS[:2]
        md += [f"## {task}: {backbone}", "", "| llm | instructions | variant | seeds | "
               + " | ".join(keys) + " |", "|---|---|---|---|" + "---|" * len(keys)]
        points: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
        for r in group:
            points[line_label(r), r["instructions"], r["variant"]].append(r)
        for (llm, n, variant), rs in sorted(points.items()):
            cells = [f"{m:.4f} ± {s:.4f}" for m, s in (_mean_std([r[k] for r in rs]) for k in keys)]
            if variant != "base":
                cells = [f"{c} ({_mean_std(change_against_base(points, llm, n, variant, k))[0]:+.4f})"
                         for c, k in zip(cells, keys)]
            md.append(f"| {llm} | {n} | {variant} | {len(rs)} | " + " | ".join(cells) + " |")
        md.append("")
        written.append(_figure(out / f"scaling_{task}-{backbone}.png", task, backbone, points, keys))
        lrn = [r for r in learning if r["task"] == task and r["backbone"] == backbone]
        if lrn:
            written.append(_learning_figure(out / f"learning_{task}-{backbone}.png", task, backbone, lrn))
    mixed = always_mixed_rows(configs, results)
    if mixed:
        md += ["## Always mixed against Base", "",
               "Each run's Llama4Rec with the alphas chosen on validation always mixed in, whatever the guard "
               "decided (the paper's protocol; analysis only), against Base on the same seeds: the selection "
               "metric (mean over seeds, change against Base's mean), its paired p over users (each user's values "
               "averaged over the seeds), and by long-tail group the gain (positive: better than Base) and its p "
               "where the guard refused the weight on some seed (from the run's report).", "",
               markdown_table(mixed), ""]
    write_text(out / "scaling.md", "\n".join(md))
    return [out / "scaling.md", *written]


def always_mixed_rows(configs: list[dict[str, Any]], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run that recorded Llama4Rec always mixed: its point, the selection metric always mixed against
    Base, the p over users, and the gain by long-tail group."""
    rows = []
    for cfg, res, setting in zip(configs, results, line_settings(configs)):
        summary = {r["variant"]: r for r in res.get("always_mixed") or []}
        if "llama4rec" not in summary or "base" not in summary:
            continue
        metric = selection_metric(cfg["task"], cfg.get("select_metric"))
        mine, base = summary["llama4rec"], summary["base"]
        row: dict[str, Any] = {"run": f"{cfg['task']}: {cfg['backbone']}",
                               "llm": line_label({"llm": llm_label(cfg["llm"]), "ranking": ranking_of(cfg),
                                                  "setting": setting}),
                               "instructions": int(cfg["instructions"]), "seeds": len(res["seeds"]),
                               "metric": metric, "Base": f"{base[metric]:.4f}",
                               "always mixed": f"{mine[metric]:.4f} ({mine[metric] - base[metric]:+.4f})",
                               "p over users": f"{mine[metric + '_p_users']:.3g}" if metric + "_p_users" in mine else "-"}
        groups = {g["group"]: g for g in res.get("long_tail") or [] if g["variant"] == always_mixed_label("Llama4Rec")}
        for name in ("tail", "middle", "head"):
            g = groups.get(name)
            row[name] = "-" if g is None or g["gain"] is None else \
                f"{g['gain']:+.4f}" + ("" if g["p"] is None else f" (p {g['p']:.2g})")
        rows.append(row)
    return rows


def change_against_base(points: dict[tuple[str, int, str], list[dict[str, Any]]], llm: str, n: int, variant: str,
                        key: str) -> list[float]:
    """Per seed, ``variant``'s ``key`` minus Base's on the same seed at the same point (seeds without a Base row
    are left out: a run always has one)."""
    base = {r["seed"]: r[key] for r in points.get((llm, n, "base"), []) if r[key] is not None}
    return [r[key] - base[r["seed"]] for r in points[llm, n, variant] if r[key] is not None and r["seed"] in base]


#: each variant's line in the scaling figures: (line style, marker); each LLM has a colour of its own
VARIANT_STYLES = {"ift": (":", "s"), "llama4rec": ("-", "o"), always_mixed_variant("llama4rec"): ("-.", "^")}


def _figure(path: Path, task: str, backbone: str, points: dict[tuple[str, int, str], list[dict[str, Any]]],
            keys: tuple[str, ...]) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    llms = sorted({p[0] for p in points})
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axes[0], keys):
        ax.axhline(0.0, color="grey", linestyle="--", label="Base (same seeds)")
        for i, llm in enumerate(llms):
            for variant, (style, marker) in VARIANT_STYLES.items():
                xs = sorted({n for (m, n, v) in points if m == llm and v == variant})
                if not xs:
                    continue
                stats = [_mean_std(change_against_base(points, llm, n, variant, key)) for n in xs]
                seeds = [len(points[llm, n, variant]) for n in xs]
                ax.errorbar(xs, [s[0] for s in stats], yerr=[s[1] for s in stats], linestyle=style, marker=marker,
                            color=cycle[i % len(cycle)], capsize=3, label=f"{variant} ({llm})")
                for x, (y, _), k in zip(xs, stats, seeds):  # how many seeds stand behind each point
                    ax.annotate(f"{k}s", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=6)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("instructions per task (ks: seeds)")
        ax.set_ylabel(f"{key} minus Base's" + (" (lower is better)" if key in RATING_KEYS else ""))
        ax.set_title(f"{task}: {backbone}", fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()  # below the plots, where it hides no point
    legend_height = 0.17 * -(-len(labels) // 3)  # inches: one line per 3 entries
    fig.set_figheight(3.4 + legend_height)
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, (legend_height + 0.05) / (3.4 + legend_height), 1, 1))
    save_figure(fig, path)
    return path


def _learning_figure(path: Path, task: str, backbone: str, rows: list[dict[str, Any]]) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4))
    llms = sorted({line_label(r) for r in rows})
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    color = {(v, m): cycle[i % len(cycle)] for i, (v, m) in enumerate((v, m) for v in LEARNING_CALLS for m in llms)}
    for (name, chance), ax in zip((("llm_top1", "chance_top1"), ("answer_loss", "chance_answer_loss")), axes):
        for variant, call in LEARNING_CALLS.items():
            for llm in llms:
                sel = [r for r in rows if (r["call"].split("/")[0], r["call"].split("/")[-1]) == call
                       and line_label(r) == llm and name in r]
                xs = sorted({r["instructions"] for r in sel})
                if not xs:
                    continue
                stats = [_mean_std([r[name] for r in sel if r["instructions"] == n]) for n in xs]
                ax.errorbar(xs, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3,
                            color=color[variant, llm], label=f"{variant} LLM ({llm}, {call[1]})")
        levels = {r[chance] for r in rows if chance in r}
        for level in levels:
            ax.axhline(level, color="grey", linestyle="--", label="chance")
        # the backbone's own first place on the same users, per point (over the seeds run there): what the LLM
        # has to beat
        mine = {"llm_top1": "backbone_top1", "answer_loss": "backbone_order_loss"}[name]
        own = {(r["instructions"], r["seed"]): r[mine] for r in rows if mine in r and r["call"].split("/")[-1] == "test"}
        if own:
            xs = sorted({n for n, _ in own})
            ax.plot(xs, [np.mean([v for (n, _), v in own.items() if n == x]) for x in xs], color="black",
                    linestyle=":", marker="x", label="backbone's order (test)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("instructions per task")
        ax.set_ylabel({"llm_top1": "top-1 accuracy (answer in list)", "answer_loss": "loss on the answer letter"}[name])
        ax.set_title(f"{task}: {backbone}", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return path

