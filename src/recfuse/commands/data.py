"""``recfuse data``: fetch public datasets, describe any dataset."""

from __future__ import annotations

import argparse

from recfuse.data.fetch import DATASETS, fetch
from recfuse.data.loaders import FORMATS, load_dataset
from recfuse.data.splits import kcore
from recfuse.eval.report import markdown_table


def describe(args: argparse.Namespace) -> int:
    ds = load_dataset(args.name, format=args.format)
    if args.kcore:
        ds = kcore(ds, args.kcore)
    info = ds.describe()
    print(f"{info['name']}  ({info['source']})")
    print(markdown_table([{"users": info["users"], "items": info["items"], "interactions": info["interactions"],
                           "density": f"{info['density']:.4%}", "ratings": info["ratings"] or "none",
                           "timestamps": "yes" if info["timestamps"] else "no"}]))
    for side in ("user_features", "item_features"):
        rows = [{"feature": k, "description": v} for k, v in info[side].items()]
        print(f"{side.replace('_', ' ')}:\n" + (markdown_table(rows) if rows else "(none)\n"))
    if info["predefined_split"]:
        print("predefined split:", ", ".join(f"{k} {v}" for k, v in info["predefined_split"].items()))
    for note in info.get("notes", []):
        print("note:", note)
    return 0


def fetch_command(args: argparse.Namespace) -> int:
    path = fetch(args.name, force=args.force, progress=not args.no_progress)
    print(f"{args.name}: {path}")
    return 0


def list_command(args: argparse.Namespace) -> int:
    rows = [{"name": "ml-100k", "description": DATASETS["ml-100k"].description + "; offline copy from recbole"}]
    rows += [{"name": d.name, "description": d.description} for d in DATASETS.values() if d.name != "ml-100k"]
    rows.append({"name": "synthetic", "description": "planted-topic synthetic data (tests, demos)"})
    print(markdown_table(rows))
    print("formats for folders:", ", ".join(f"{k} ({v.description})" for k, v in FORMATS.items()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fetch and describe datasets", description="Fetch and describe datasets.")
    dsub = p.add_subparsers(dest="data_command", metavar="<data command>", required=True)

    d = dsub.add_parser("describe", help="print users, items, interactions, density and side features",
                        description="Print users, items, interactions, density and the side features found.")
    d.add_argument("name", help="dataset name (ml-100k, ml-1m, ...) or a folder/file")
    d.add_argument("--format", choices=sorted(FORMATS), default=None, help="force a file format (default: detect)")
    d.add_argument("--kcore", type=int, default=0, help="apply k-core filtering first (0: none)")
    d.set_defaults(func=describe)

    f = dsub.add_parser("fetch", help="download a public dataset into the cache and verify its checksum",
                        description="Download a public dataset into the cache (RECFUSE_CACHE or ~/.cache/recfuse) "
                                    "and verify its checksum.")
    f.add_argument("name", choices=sorted(DATASETS), help="dataset to download")
    f.add_argument("--force", action="store_true", help="download again even if present")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(func=fetch_command)

    ls = dsub.add_parser("list", help="list known datasets and formats", description="List datasets and formats.")
    ls.set_defaults(func=list_command)
