"""How strongly does CL4SRec's contrastive loss pull on the encoder, next to the next-item loss? (ML-100K)

    .venv/bin/python benchmarks/cl4srec_loss_balance.py --epochs 0 5 20
    # writes benchmarks/results/backbones/sequential/cl4srec-loss-balance/loss_balance.{json,md}

The contrastive weight only means something relative to the two losses' gradients. This trains the model along
SASRec's path (CL4SRec with weight 0: the next-item loss alone) and, at each of ``--epochs`` (0 = as initialised),
takes ``--batches`` training batches and measures the gradient norm over all encoder parameters of the
next-item loss and of the contrastive loss (two augmented views per sequence, as in training) for each
similarity and temperature of ``--settings``. The ratio contrastive / next-item says which weight makes the
contrastive gradient a given fraction of the next-item one. Writes ``--out``.json and .md, and manifest.json
beside them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import recfuse  # noqa: F401  (OMP_WAIT_POLICY=PASSIVE is set before torch starts)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine, parse_params, report_files, write_manifest  # noqa: E402  (benchmarks/_common.py)


def gradient_norms(model, rows, batches: int, batch_size: int, settings: list[tuple[str, float]], seed: int) -> list[dict]:
    """Mean over ``batches`` random batches of each loss's gradient norm (encoder parameters, training mode)."""
    import torch

    from recfuse.models.sequential.cl4srec import info_nce

    enc = model.encoder
    enc.train()
    params = [p for p in enc.parameters() if p.requires_grad]

    def norm(loss) -> float:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return float(sum((g ** 2).sum() for g in grads if g is not None) ** 0.5)

    gen = torch.Generator().manual_seed(seed)
    sums = {s: [0.0, 0.0, 0.0] for s in settings}  # next-item |g|, contrastive |g|, contrastive loss
    for _ in range(batches):
        rows_b = rows[torch.randperm(len(rows), generator=gen)[:batch_size]]
        inp = rows_b[:, :-1]
        rec, _ = model._next_item_loss(inp, rows_b[:, 1:])
        z = enc(torch.cat([model._view(inp), model._view(inp)]))[:, -1]  # the views of training, as configured
        g_rec = norm(rec)
        for sim, temp in settings:
            cl = info_nce(*z.chunk(2), temp, sim)
            acc = sums[(sim, temp)]
            acc[0] += g_rec
            acc[1] += norm(cl)
            acc[2] += float(cl.detach())
    return [{"similarity": sim, "temperature": temp, "next_item_grad": a / batches, "contrastive_grad": b / batches,
             "contrastive_loss": c / batches, "ratio": b / a} for (sim, temp), (a, b, c) in sums.items()]


def markdown(report: dict) -> str:
    lines = ["# CL4SRec: contrastive against next-item gradient on ML-100K", "",
             f"Measured {report['date']} on {report['machine']}; torch {report['torch']}. Encoder trained with the "
             f"next-item loss alone (SASRec's path, seed {report['seed']}); gradient norms over all encoder parameters, "
             f"mean of {report['batches']} batches of {report['batch_size']} windows.", "",
             "| trained epochs (best on validation kept) | similarity | temperature | next-item |g| | contrastive |g| | ratio | contrastive loss |",
             "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['epochs']} | {r['similarity']} | {r['temperature']} | {r['next_item_grad']:.3f} | "
                     f"{r['contrastive_grad']:.3f} | {r['ratio']:.1f} | {r['contrastive_loss']:.2f} |")
    lines += ["", "A contrastive weight w makes the contrastive gradient about w x ratio of the next-item one."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--epochs", nargs="+", type=int, default=[0, 20], help="measure after these many epochs")
    ap.add_argument("--settings", nargs="+", default=["dot:0.5", "dot:1.0", "cos:0.5"], metavar="SIM:TEMPERATURE")
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a model setting, VALUE as JSON (e.g. --param max_len=20)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "results" / "backbones" / "sequential" / "cl4srec-loss-balance" / "loss_balance"))
    args = ap.parse_args(argv)
    settings = [(s.split(":")[0], float(s.split(":")[1])) for s in args.settings]
    params = parse_params(args.param)

    import torch

    from recfuse.data import leave_one_out, load_dataset
    from recfuse.io import write_report
    from recfuse.models.base import create_model
    from recfuse.models.sequential import Sequences

    torch.set_num_threads(args.threads)
    split = leave_one_out(load_dataset("ml-100k"), order="time")
    model = create_model("cl4srec", seed=args.seed, **{**params, "cl_weight": 0.0})
    rows = torch.as_tensor(Sequences.from_interactions(split.train, split.n_users)
                           .windows(model.max_len + model.window_extra, min_len=2))
    report = {"dataset": "ml-100k", "seed": args.seed, "params": params, "batches": args.batches, "batch_size": model.batch_size,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "torch": torch.__version__,
              "machine": machine(), "rows": []}
    for epochs in sorted(set(args.epochs)):
        if epochs == 0:  # as initialised (what fit would start from)
            model.n_items, model.n_users = split.n_items, split.n_users
            torch.manual_seed(args.seed)
            model.encoder = model._build_encoder()
        else:
            model = create_model("cl4srec", seed=args.seed, **{**params, "cl_weight": 0.0, "epochs": epochs,
                                                                 "patience": epochs})
            model.fit(split, progress=False)  # keeps its best epoch on validation, as training would
        for r in gradient_norms(model, rows, args.batches, model.batch_size, settings, args.seed):
            report["rows"].append({"epochs": epochs, **r})
            print(report["rows"][-1], flush=True)
    write_report(args.out, report, markdown(report))
    write_manifest(report_files(args.out), argv, __file__)
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
