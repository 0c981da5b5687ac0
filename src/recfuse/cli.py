"""One entry point: ``recfuse <command>``.

Each command lives in its own module with a ``register(subparsers)`` function; this file only
collects them, so a pipeline adds its commands without editing the others.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from recfuse import __version__
from recfuse.errors import RecfuseError
from recfuse.provenance import pin_code_state, set_command

COMMAND_MODULES = (
    "recfuse.commands.data",
    "recfuse.commands.train",
    "recfuse.commands.serve",
    "recfuse.commands.llm",
    "recfuse.commands.tune",
    "recfuse.commands.run",
    "recfuse.commands.report",
    "recfuse.commands.cache",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recfuse",
        description="LLMs and conventional recommenders that improve each other (Llama4Rec, RecLM).",
    )
    parser.add_argument("--version", action="version", version=f"recfuse {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # that command is not part of this installation yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    set_command(["recfuse", *argv])  # what manifest.json files record as the command
    pin_code_state()  # and the commit the run started from
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    previous = _interrupt_on_sigterm()
    try:
        return int(args.func(args) or 0)
    except RecfuseError as e:
        print(f"recfuse: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recfuse: interrupted; finished stages are cached and a rerun resumes", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt_on_sigterm():
    """Treat SIGTERM (``kill``, a job scheduler's stop) like Ctrl-C, so that half-built stages are cleaned up.
    Returns the previous handler (None outside the main thread, where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    sys.exit(main())
