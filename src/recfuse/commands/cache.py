"""``recfuse cache``: check the stage cache and clean it.

``recfuse cache verify`` checks every stage folder (its key, and every file against the size and SHA-256 it
recorded when it was written) and lists the damaged ones; a run recomputes those by itself, with a warning.
``recfuse cache clean`` removes the damaged stages and the half-built folders of runs that were killed;
``--checkpoints`` also the checkpoints a killed tuning would resume from; ``--all`` removes every stage (the LLM answers in ``<cache>/llm`` stay: ``recfuse llm cache`` manages them).
``recfuse cache export FILE`` / ``recfuse cache import FILE`` carry verified stages to another machine.
"""

from __future__ import annotations

import argparse
from collections import Counter

from recfuse.eval.report import markdown_table
from recfuse.stages import (checkpoint_folders, clean_stages, export_stages, import_stages, scan_stages, stage_kinds,
                             stage_root)


def verify_command(args: argparse.Namespace) -> int:
    root = stage_root()
    checks = scan_stages(root, args.stage)
    damaged = [c for c in checks if not c.usable]
    counts = Counter(c.status for c in checks)
    print(f"{root}: {len(checks)} stage folder(s): {counts['ok']} verified, {counts['unrecorded']} written before "
          f"checksums were recorded (nothing wrong found), {len(damaged)} damaged")
    if damaged:
        print(markdown_table([{"stage": c.name, "folder": c.path.name, "why": c.reason} for c in damaged]))
        print("a run recomputes a damaged stage by itself; `recfuse cache clean` removes them now")
    resumable = [p for kind in stage_kinds(root, args.stage) for p in checkpoint_folders(kind, "resumable")]
    if resumable:
        size = sum(f.stat().st_size for p in resumable for f in p.rglob("*") if f.is_file())
        print(f"{len(resumable)} checkpoint folder(s) of unfinished builds ({size / 2**20:.0f} MiB), kept so that "
              "the run resumes there: " + ", ".join(f"{p.parent.name}/{p.name}" for p in resumable)
              + " (`recfuse cache clean --checkpoints` removes them)")
    return 1 if damaged else 0


def clean_command(args: argparse.Namespace) -> int:
    root = stage_root()
    removed = clean_stages(root, args.stage, everything=args.all, dry_run=args.dry_run,
                           checkpoints=args.checkpoints)
    what = "would remove" if args.dry_run else "removed"
    for path in removed:
        print(f"{what} {path}")
    print(f"{root}: {what} {len(removed)} folder(s)"
          + ("" if args.all else " (damaged stages, half-built folders of runs that died, spent checkpoints"
                                 + (" and every checkpoint)" if args.checkpoints else ")")))
    return 0


def export_command(args: argparse.Namespace) -> int:
    exported = export_stages(args.file, stage_root(), args.stage)
    kinds = Counter(c.name for c in exported)
    print(f"{args.file}: {len(exported)} stage(s) from {stage_root()}"
          + (f" ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})" if kinds else "")
          + "; `recfuse cache import` there, and `recfuse llm cache export` for the LLM answers")
    return 0


def import_command(args: argparse.Namespace) -> int:
    result = import_stages(args.file, stage_root())
    print(f"{stage_root()}: {len(result.added)} stage(s) added, {len(result.kept)} already there (kept), "
          f"{len(result.refused)} refused")
    if result.refused:
        print(markdown_table([{"stage": label, "why": why} for label, why in result.refused]))
    return 1 if result.refused else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="verify and clean the stage cache",
                       description=(__doc__ or "").split("\n\n")[1])
    csub = p.add_subparsers(dest="cache_command", metavar="<cache command>", required=True)
    v = csub.add_parser("verify", help="check every cached stage against the checksums it recorded",
                        description="Check every stage folder of the cache (RECFUSE_CACHE or ~/.cache/recfuse): "
                                    "its key and each file's size and SHA-256. Exit status 1 when some are damaged.")
    v.add_argument("--stage", default=None, help="only the stages of this name (e.g. backbone)")
    v.set_defaults(func=verify_command)
    c = csub.add_parser("clean", help="remove damaged stages and half-built folders (--all: every stage)",
                        description="Remove the stage folders that fail verification and the temporary folders of "
                                    "builds whose process died; with --all, every stage.")
    c.add_argument("--stage", default=None, help="only the stages of this name")
    c.add_argument("--all", action="store_true", help="remove every stage, not only the damaged ones")
    c.add_argument("--checkpoints", action="store_true",
                   help="also remove the checkpoints of unfinished tuning stages (a rerun starts them over)")
    c.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    c.set_defaults(func=clean_command)
    e = csub.add_parser("export", help="write the verified stages into one file, to carry them to another machine",
                        description="Write every verified stage (trained backbones, tuned adapters, scores, ...) "
                                    "into one tar file (.tar.gz: compressed), for `recfuse cache import` on another "
                                    "machine: a run there reuses them. Damaged stages are left out.")
    e.add_argument("file", help="the file to write (e.g. stages.tar.gz)")
    e.add_argument("--stage", default=None, help="only the stages of this name (e.g. sft: the tuned adapters)")
    e.set_defaults(func=export_command)
    i = csub.add_parser("import", help="add the stages of an export to this machine's cache",
                        description="Add the stages of a `recfuse cache export` file to the cache. Each is verified "
                                    "against the checksums it was exported with before it is moved into place; "
                                    "stages already here are kept. Exit status 1 when some were refused.")
    i.add_argument("file", help="a file written by `recfuse cache export`")
    i.set_defaults(func=import_command)
