"""Local transformers backend: any model id or folder, GGUF files, peft adapters, CPU or CUDA.

Choice scoring runs each prompt once and sends only its last position through the LM head
(all-position logits would cost about 2 GB per batch). Single-token answers (ratings, letters, Yes/No):
prompts are right-padded and run without an attention mask, so attention takes the fused causal kernel.
Answers longer than one token: prompts are left-padded with explicit position ids and the answers continue
from the prompt's key/value cache, so every choice costs only its own tokens. Either way a batch scores the
same as each prompt alone.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recfuse import _env  # noqa: F401  (before torch)
from recfuse.io import fingerprint as content_hash
from recfuse.llm.base import LLMError, Prompt, RequiredPart, check_choices, normalize_prompt

log = logging.getLogger(__name__)


def cpu_bf16_fast() -> bool:
    """Whether this CPU has native bf16 matmul units (AVX512-BF16 or AMX), where bf16 runs ~2x fp32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


def resolve_dtype(dtype: Any, device: Any) -> Any:
    """``auto``: bf16 on CUDA and on CPUs with bf16 units, else fp32; or a name like ``float32``."""
    import torch

    if dtype in (None, "auto"):
        if device.type == "cuda":
            return torch.bfloat16
        return torch.bfloat16 if cpu_bf16_fast() else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[str(dtype)]
    except KeyError:
        raise LLMError(f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16") from None


@contextlib.contextmanager
def quiet_loading(progress: bool):
    """Silence transformers' and tqdm's loading bars unless ``progress`` is on."""
    if progress:
        yield
        return
    import functools

    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    patched_gguf = False
    try:  # the GGUF reader uses a plain tqdm bar
        import transformers.modeling_gguf_pytorch_utils as gguf_utils

        old_tqdm = gguf_utils.tqdm
        gguf_utils.tqdm = functools.partial(old_tqdm, disable=True)
        patched_gguf = True
    except (ImportError, AttributeError):
        pass
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
        if patched_gguf:
            gguf_utils.tqdm = old_tqdm


def weights_hash(path: Path, limit: int = 8 << 20) -> str:
    """Content hash of a file (its size, first and last ``limit`` bytes) or of a folder's weight files."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".gguf", ".json"))
        return content_hash(*[(p.name, weights_hash(p, limit)) for p in files])
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(limit)
        fh.seek(max(0, size - limit))
        tail = fh.read(limit)
    return content_hash(size, head, tail)


class LocalLLM:
    """A causal LM run in this process with transformers.

    ``model`` is a Hugging Face id, a local folder, a ``.gguf`` file, or an already loaded
    ``PreTrainedModel`` (then pass ``tokenizer`` too). ``adapter`` is a peft adapter folder applied on
    top, merged into the weights (in float32, before the cast to ``dtype``) so that inference pays nothing
    for it (``merge_adapter=False`` keeps it as separate low-rank layers). ``chat`` renders string prompts with the model's chat template (``system_prompt`` adds a
    system message). ``batch_size`` is the number of prompts per forward pass. ``kv_cache`` is the key/value
    cache of generation: ``static`` (default) pre-allocates it for the batch's prompt plus ``max_new_tokens``;
    ``dynamic`` (transformers' default) grows it by concatenation, which copies the whole cache at every new
    token (5x slower decoding of 520-token prompts at batch 16 on a 2-core CPU). Answers are the same.
    ``workers`` > 1 (CPU, a model loaded from a path) spreads the batches of ``generate`` and
    ``choice_logprobs`` over that many processes, each with its own copy of the model and an equal share
    of the threads: a small model's decoding steps are too small to keep several threads of one process
    busy (on 2 cores, 2 single-thread workers wrote profiles 1.24x faster than one 2-thread process).
    Answers are the same as with one process.
    """

    def __init__(self, model: Any, tokenizer: Any = None, *, adapter: str | Path | None = None,
                 merge_adapter: bool = True,
                 dtype: Any = "auto", device: str = "auto", batch_size: int = 8, chat: bool = True,
                 system_prompt: str | None = None, max_prompt_tokens: int | None = None,
                 progress: bool = False, fingerprint: str | None = None, name: str | None = None,
                 kv_cache: str = "static", workers: int = 1):
        import torch
        from transformers import AutoTokenizer

        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available()
                                   else ("cpu" if device == "auto" else device))
        self.dtype = resolve_dtype(dtype, self.device)
        self.batch_size = int(batch_size)
        if kv_cache not in ("static", "dynamic"):
            raise LLMError(f"unknown kv_cache {kv_cache!r}: use static or dynamic")
        self.kv_cache = kv_cache
        self.workers = max(1, int(workers))
        # shared with views (with_chat), which share the weights: how a worker rebuilds them (models loaded
        # from a path, until they change in memory) and the running worker pool
        self._workers_state: dict[str, Any] = {"spec": None, "pool": None}
        self.chat = chat
        self.system_prompt = system_prompt
        self.progress = progress
        self.stats = {"choice_calls": 0, "generate_calls": 0, "prompts_scored": 0, "prompts_generated": 0,
                      "prompts_truncated": 0, "prompts_with_shared_prefix": 0}
        weights_id: Any
        if isinstance(model, (str, Path)):
            model_ref = str(model)
            self.name = name or model_ref
            path = Path(model_ref).expanduser()
            try:
                load_dtype = torch.float32 if adapter is not None and merge_adapter else self.dtype
                with quiet_loading(progress):
                    self.model, tok, weights_id = _load(path, model_ref, load_dtype)
            except LLMError:
                raise
            except (OSError, ValueError) as e:
                raise LLMError(f"cannot load model {model_ref!r}: {e}. Without internet, give a local folder "
                               f"or a .gguf file (or use the embedded model: --backend embedded)") from e
            tokenizer = tokenizer or tok
        else:
            if tokenizer is None:
                raise LLMError("an in-memory model needs its tokenizer: LocalLLM(model, tokenizer)")
            self.model = model
            self.name = name or str(getattr(getattr(model, "config", None), "_name_or_path", type(model).__name__))
            weights_id = None
        if isinstance(tokenizer, (str, Path)):
            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
        self.tokenizer = tokenizer
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self.adapter = None
        if adapter is not None:
            from peft import PeftModel

            adapter = Path(adapter)
            if not adapter.is_dir():
                raise LLMError(f"adapter folder not found: {adapter}")
            self.model = PeftModel.from_pretrained(self.model, str(adapter))
            if merge_adapter:  # W + BA once, in the loaded precision: LoRA then costs nothing per token
                self.model = self.model.merge_and_unload()
            self.adapter = str(adapter)
            weights_id = (weights_id, "adapter", weights_hash(adapter), "merged" if merge_adapter else "separate")
        if isinstance(model, (str, Path)) or adapter is not None:
            self.model.to(device=self.device, dtype=self.dtype)
        else:
            self.device = next(self.model.parameters()).device
            self.dtype = next(self.model.parameters()).dtype
        self.model.eval()
        cfg = self.model.config
        self._context_tokens = int(getattr(cfg, "max_position_embeddings", 2048) or 2048)
        self.max_prompt_tokens = int(max_prompt_tokens or self._context_tokens)
        self._weights_id = weights_id if weights_id is not None else self._weights_hash()
        self._fixed_fingerprint = fingerprint
        self._fingerprint = fingerprint or self._compute_fingerprint()
        if isinstance(model, (str, Path)):
            self._workers_state["spec"] = {"model": str(model), "adapter": str(adapter) if adapter is not None else None,
                          "merge_adapter": merge_adapter, "dtype": str(self.dtype).replace("torch.", ""),
                          "device": "cpu", "max_prompt_tokens": self.max_prompt_tokens, "kv_cache": kv_cache,
                          "weights": self._weights_id}
        self._choice_ids: dict[str, list[int]] = {}
        self._warned_truncation = False

    # ----------------------------------------------------------------- identity
    @property
    def fingerprint(self) -> str:
        """Model, weights (adapter included), dtype and prompt rendering: what decides the answers."""
        return self._fingerprint

    def _weights_hash(self) -> str:
        """Hash of an in-memory model's trainable weights (a LoRA adapter: small) and its config."""
        import torch

        params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if not params or sum(p.numel() for _, p in params) > 50_000_000:
            params = list(self.model.named_parameters())[:4] + list(self.model.named_parameters())[-4:]
        parts: list[Any] = [self.model.config.to_json_string()]
        with torch.no_grad():
            for n, p in params:
                parts.append(n)
                parts.append(p.detach().float().cpu().numpy())
        return content_hash(*parts)

    def _compute_fingerprint(self) -> str:
        # a prompt budget below the model's context cuts long prompts: other answers (in the key only then, so
        # answers cached under the default stay valid)
        budget = [self.max_prompt_tokens] if self.max_prompt_tokens != self._context_tokens else []
        return content_hash("LocalLLM", self.name, self._weights_id, str(self.dtype), self.chat,
                            self.system_prompt, getattr(self.tokenizer, "chat_template", None), *budget)

    def refresh_fingerprint(self) -> str:
        """Recompute the fingerprint after the in-memory weights changed (e.g. after tuning)."""
        self._weights_id = self._weights_hash()
        self._fingerprint = self._fixed_fingerprint or self._compute_fingerprint()
        self._workers_state["spec"] = None  # the weights in memory are no longer those on disk: no workers
        self.close()
        return self._fingerprint

    # ------------------------------------------------------------- workers
    def _worker_pool(self, n_batches: int) -> _WorkerPool | None:
        """The worker processes for ``n_batches`` batches, or None to run them here."""
        state = self._workers_state
        if self.workers < 2 or n_batches < 2 or state["spec"] is None or self.device.type != "cpu":
            return None
        if state["pool"] is None:
            state["pool"] = _WorkerPool(state["spec"], self.workers)
        return state["pool"]

    def close(self) -> None:
        """Stop the worker processes (they also stop when this process exits)."""
        pool, self._workers_state["pool"] = self._workers_state["pool"], None
        if pool is not None:
            pool.close()

    def with_chat(self, chat: bool) -> LocalLLM:
        """A view of this model (weights shared) that renders string prompts with or without the chat template."""
        import copy

        other = copy.copy(self)
        other.chat = chat
        other.stats = self.stats
        other._fingerprint = self._fixed_fingerprint or other._compute_fingerprint()
        return other

    # ---------------------------------------------------------------- rendering
    def render(self, prompt: Prompt) -> str:
        """The exact text the model reads: chat template applied, generation prompt added."""
        p = normalize_prompt(prompt)
        if isinstance(p, str) and not self.chat:
            return p
        messages = [{"role": "user", "content": p}] if isinstance(p, str) else p
        if self.system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": self.system_prompt}] + messages
        if getattr(self.tokenizer, "chat_template", None):
            cont = messages[-1]["role"] == "assistant"
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=not cont,
                                                      continue_final_message=cont)
        text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages)
        return text if messages[-1]["role"] == "assistant" else text + "Assistant:"

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids of a rendered prompt, keeping the last ``max_prompt_tokens`` (the answer slot is last)."""
        text = self.render(prompt)
        templated = self.chat or not isinstance(prompt, str)
        ids = self.tokenizer(text, add_special_tokens=not templated)["input_ids"]
        if len(ids) > self.max_prompt_tokens:
            self.stats["prompts_truncated"] += 1
            if not self._warned_truncation:
                log.warning("a prompt of %d tokens was cut to its last %d; give the prompt builder a smaller "
                            "token budget", len(ids), self.max_prompt_tokens)
                self._warned_truncation = True
            ids = ids[-self.max_prompt_tokens:]
        return list(ids)

    def count_tokens(self, text: str) -> int:
        """Number of tokens of a piece of text (for prompt budgets)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def choice_token_ids(self, choice: str) -> list[int]:
        """Token ids of an answer as it follows a prompt (derived from the tokenizer, never hard-coded).

        The answer is tokenized after a newline anchor and the anchor's tokens removed, so tokenizers that
        add a word-start marker to a standalone string give the in-context ids.
        """
        if choice not in self._choice_ids:
            tok = self.tokenizer
            anchor = tok("\n", add_special_tokens=False)["input_ids"]
            both = tok("\n" + choice, add_special_tokens=False)["input_ids"]
            if both[:len(anchor)] == anchor and len(both) > len(anchor):
                ids = both[len(anchor):]
            else:
                ids = tok(choice, add_special_tokens=False)["input_ids"]
            if not ids:
                raise LLMError(f"choice {choice!r} tokenizes to nothing")
            self._choice_ids[choice] = list(ids)
        return self._choice_ids[choice]

    def _batch(self, seqs: list[list[int]]):
        import torch

        n = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(seqs), n), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), n), dtype=torch.long)
        for i, s in enumerate(seqs):
            if s:
                ids[i, n - len(s):] = torch.tensor(s, dtype=torch.long)
                mask[i, n - len(s):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids.to(self.device), mask.to(self.device), pos.to(self.device)

    def _batch_indices(self, lengths: list[int]) -> list[np.ndarray]:
        """Prompt indices per batch, similar lengths together (little padding)."""
        order = np.argsort(-np.asarray(lengths), kind="stable")
        return [order[s:s + self.batch_size] for s in range(0, len(lengths), self.batch_size)]

    def _batches(self, lengths: list[int], desc: str):
        from recfuse.models.torch_utils import progress  # lazy: torch

        batches = self._batch_indices(lengths)
        yield from progress(batches, enabled=self.progress, desc=desc, total=len(batches))

    def _run_batches(self, tasks: list[tuple[np.ndarray, str, tuple]], desc: str):
        """``(idx, method, args)`` per batch -> ``(idx, self.method(*args))`` as they finish: here, or spread
        over the worker processes."""
        from recfuse.models.torch_utils import progress  # lazy: torch

        pool = self._worker_pool(len(tasks))
        done = pool.map(tasks) if pool is not None else (
            (idx, getattr(self, method)(*args)) for idx, method, args in tasks)
        yield from progress(done, enabled=self.progress, desc=desc, total=len(tasks))

    def _right_padded(self, seqs: list[list[int]]):
        """Token ids padded on the right ``(len(seqs), longest)``, the distinct last real positions, and each
        row's index among them (for ``logits_to_keep``: the LM head only where a row's next token is read)."""
        import torch

        lengths = torch.tensor([len(s) for s in seqs])
        ids = torch.full((len(seqs), int(lengths.max())), self.tokenizer.pad_token_id, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        last, row_pos = torch.unique(lengths - 1, return_inverse=True)
        return ids, last, row_pos

    def _next_token_logprobs(self, seqs: list[list[int]]):
        """Log-probabilities of the token after each sequence, ``(len(seqs), vocab)``, in one forward pass.

        The batch is padded on the right and run without an attention mask: under the causal mask a real
        token never sees the padding after it, so every row reads exactly as alone, and attention takes
        the fused causal kernel instead of an explicit (len x len) mask. Only the last real position of
        each row goes through the LM head (``logits_to_keep`` with those positions).
        """
        import torch

        ids, last, row_pos = self._right_padded(seqs)
        logits = self.model(input_ids=ids.to(self.device), use_cache=False,
                            logits_to_keep=last.to(self.device)).logits  # (b, len(last), V)
        picked = logits[torch.arange(len(seqs)), row_pos.to(self.device)]
        return picked.float().log_softmax(-1)

    # ------------------------------------------------------------ choice scoring
    def choice_logprobs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> np.ndarray:
        """Log-probability of each choice after each prompt, ``(len(prompts), len(choices))``."""
        choices = check_choices(choices)
        out = np.zeros((len(prompts), len(choices)), dtype=np.float64)
        if not len(prompts):
            return out
        self.stats["choice_calls"] += 1
        self.stats["prompts_scored"] += len(prompts)
        encoded = [self.encode(p) for p in prompts]
        alone = np.arange(len(encoded))
        tasks: list[tuple[np.ndarray, str, tuple]] = []
        if all(len(self.choice_token_ids(c)) == 1 for c in choices):
            # prompts that open alike (one user's pointwise prompts, one per candidate): the shared part once
            groups = shared_prefix_groups(encoded, SHARED_PREFIX_TOKENS, max(self.batch_size, 16))
            tasks += [(idx, "score_shared_prefix", (encoded[idx[0]][:n], [encoded[i][n:] for i in idx], choices))
                      for n, idx in groups]
            grouped = np.concatenate([idx for _, idx in groups]) if groups else np.zeros(0, dtype=np.int64)
            alone = np.setdiff1d(alone, grouped)
            self.stats["prompts_with_shared_prefix"] += len(grouped)
        tasks += [(alone[idx], "score_batch", ([encoded[i] for i in alone[idx]], choices))
                  for idx in self._batch_indices([len(encoded[i]) for i in alone])]
        for idx, scores in self._run_batches(tasks, "scoring"):
            out[idx] = scores
        return out

    def score_shared_prefix(self, prefix: list[int], suffixes: list[list[int]], choices: Sequence[str]) -> np.ndarray:
        """Log-probabilities ``(len(suffixes), len(choices))`` of single-token choices after ``prefix + suffix``:
        the prefix in one pass, its keys and values repeated for every suffix, the suffixes in one more (padded
        on the right with no mask: under the causal mask a real token never sees the padding after it)."""
        import torch

        first = torch.tensor([self.choice_token_ids(c)[0] for c in choices], device=self.device)
        with torch.inference_mode():
            cache = self.model(input_ids=torch.tensor([prefix], device=self.device), use_cache=True,
                               logits_to_keep=1).past_key_values
            cache.batch_repeat_interleave(len(suffixes))
            ids, last, row_pos = self._right_padded(suffixes)
            pos = (len(prefix) + torch.arange(ids.shape[1]))[None, :].expand(len(suffixes), -1)
            logits = self.model(input_ids=ids.to(self.device), position_ids=pos.to(self.device),
                                past_key_values=cache, use_cache=True, logits_to_keep=last.to(self.device)).logits
            picked = logits[torch.arange(len(suffixes)), row_pos.to(self.device)].float().log_softmax(-1)
            return picked[:, first].double().cpu().numpy()

    def score_batch(self, seqs: list[list[int]], choices: Sequence[str]) -> np.ndarray:
        """Log-probabilities ``(len(seqs), len(choices))`` of the choices after token sequences, one forward
        pass (and one more for the tokens after the first of multi-token choices)."""
        import torch

        cids = [self.choice_token_ids(c) for c in choices]
        k, lmax = len(choices), max(len(c) for c in cids)
        first = torch.tensor([c[0] for c in cids], device=self.device)
        with torch.inference_mode():
            if lmax == 1:
                return self._next_token_logprobs(seqs)[:, first].double().cpu().numpy()
            rest = torch.full((k, lmax - 1), self.tokenizer.pad_token_id, dtype=torch.long)
            rest_mask = torch.zeros((k, lmax - 1), dtype=torch.bool)
            for j, c in enumerate(cids):
                rest[j, :len(c) - 1] = torch.tensor(c[1:], dtype=torch.long)
                rest_mask[j, :len(c) - 1] = True
            rest, rest_mask = rest.to(self.device), rest_mask.to(self.device)
            ids, mask, pos = self._batch(seqs)
            res = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
            score = res.logits[:, -1, :].float().log_softmax(-1)[:, first]  # (b, k)
            b = len(seqs)
            cache = res.past_key_values
            cache.batch_repeat_interleave(k)
            inp = torch.cat([first[:, None], rest[:, :-1]], dim=1)[:, :lmax - 1]  # tokens fed
            inp = inp.repeat(b, 1)  # (b*k, lmax-1), prompt-major
            cont_mask = torch.cat([mask.repeat_interleave(k, 0),
                                   torch.ones((b * k, lmax - 1), dtype=mask.dtype, device=self.device)], 1)
            start = mask.sum(-1).repeat_interleave(k)[:, None]
            cpos = start + torch.arange(lmax - 1, device=self.device)[None, :]
            logits = self.model(input_ids=inp, attention_mask=cont_mask, position_ids=cpos,
                                past_key_values=cache, use_cache=True).logits
            clp = logits.float().log_softmax(-1)  # (b*k, lmax-1, V)
            tgt = rest.repeat(b, 1)
            tok_lp = clp.gather(-1, tgt[:, :, None])[:, :, 0]
            tok_lp = torch.where(rest_mask.repeat(b, 1), tok_lp, torch.zeros_like(tok_lp))
            return (score + tok_lp.sum(-1).view(b, k)).double().cpu().numpy()

    # ------------------------------------------------------------- generation
    #: ``generate(..., require=RequiredPart(...))`` is done in one pass (:class:`_RequiredPartProcessor`)
    supports_required_part = True

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int = 128, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0, stop: Sequence[str] | None = None,
                 repetition_penalty: float = 1.0, require: RequiredPart | None = None) -> list[str]:
        """Continuations of the prompts; greedy when ``temperature`` is 0, sampled (seeded) otherwise;
        ``require``: a part every answer must contain, written for the model where it would end without it."""
        texts: list[str] = [""] * len(prompts)
        if not len(prompts):
            return texts
        self.stats["generate_calls"] += 1
        self.stats["prompts_generated"] += len(prompts)
        encoded = [self.encode(p) for p in prompts]
        params = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p,
                  "stop": list(stop) if stop else None, "repetition_penalty": repetition_penalty,
                  "require": require}
        tasks = [(idx, "generate_batch", ([encoded[i] for i in idx], seed + bi, params))
                 for bi, idx in enumerate(self._batch_indices([len(e) for e in encoded]))]
        for idx, answers in self._run_batches(tasks, "generating"):
            for i, text in zip(idx, answers):
                texts[i] = text
        return texts

    def generate_batch(self, seqs: list[list[int]], seed: int, params: dict) -> list[str]:
        """One batch of :meth:`generate` from token sequences; ``seed`` seeds its sampling."""
        import torch

        stop, temperature = params["stop"], float(params["temperature"])
        sample = temperature > 0
        kw: dict[str, Any] = {"do_sample": sample, "max_new_tokens": int(params["max_new_tokens"]),
                              "pad_token_id": self.tokenizer.pad_token_id, "cache_implementation": self.kv_cache}
        if params["repetition_penalty"] != 1.0:
            kw["repetition_penalty"] = float(params["repetition_penalty"])
        if sample:
            kw.update(temperature=temperature, top_p=float(params["top_p"]))
        else:
            kw.update(temperature=None, top_p=None, top_k=None)
        eos = [t for t in {self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)}
               if t is not None]
        flat: list[int] = []
        for t in eos:
            flat.extend(t if isinstance(t, list) else [t])
        if flat:
            kw["eos_token_id"] = sorted(set(flat))
        if stop:  # stop early once every sequence has produced a stop string (the text is cut below)
            kw.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        with torch.inference_mode():
            ids, mask, _ = self._batch(seqs)
            if sample:
                torch.manual_seed(seed)
            if params["require"] is not None:
                from transformers import LogitsProcessorList

                kw["logits_processor"] = LogitsProcessorList([_RequiredPartProcessor(
                    self.tokenizer, params["require"], ids.shape[1], stop or [], kw.get("eos_token_id", []))])
            gen = self.model.generate(input_ids=ids, attention_mask=mask, **kw)
        return [_cut(self.tokenizer.decode(row, skip_special_tokens=True), stop) for row in gen[:, ids.shape[1]:]]

    # --------------------------------------------------------- token scoring
    def token_logprobs(self, texts: Sequence[str]) -> list[dict[str, list]]:
        """Per-token log-probabilities of raw texts (for ``echo`` in the server): tokens, offsets, logprobs."""
        import torch

        out: list[dict[str, list]] = []
        with torch.inference_mode():
            for text in texts:
                enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
                ids = enc["input_ids"][-self.max_prompt_tokens:]
                offs = enc["offset_mapping"][-self.max_prompt_tokens:]
                if not ids:
                    out.append({"tokens": [], "text_offset": [], "token_logprobs": []})
                    continue
                x = torch.tensor([ids], device=self.device)
                lp = self.model(input_ids=x).logits[0].float().log_softmax(-1)
                tl = [None] + lp[:-1].gather(-1, x[0, 1:, None])[:, 0].tolist()
                out.append({"tokens": [text[a:b] for a, b in offs], "text_offset": [a for a, _ in offs],
                            "token_logprobs": tl})
        return out

    def next_token_top_logprobs(self, prompts: Sequence[Prompt], k: int) -> list[list[tuple[str, float]]]:
        """The ``k`` likeliest next tokens after each prompt with their log-probabilities."""
        import torch

        encoded = [self.encode(p) for p in prompts]
        out: list[list[tuple[str, float]]] = [[] for _ in prompts]
        with torch.inference_mode():
            for idx in self._batches([len(e) for e in encoded], "scoring"):
                top = self._next_token_logprobs([encoded[i] for i in idx]).topk(k, dim=-1)
                for row, i in enumerate(idx):
                    out[i] = [(self.tokenizer.decode([int(t)]), float(v))
                              for v, t in zip(top.values[row], top.indices[row])]
        return out

    def __repr__(self) -> str:
        return (f"LocalLLM({self.name!r}, device={self.device.type}, dtype={str(self.dtype).replace('torch.', '')}, "
                f"adapter={self.adapter!r})")


class _RequiredPartProcessor:
    """Logits processor of one generation batch that writes ``part.insert`` for a row whose answer would end
    (its likeliest next token is an end token or completes a stop string) or has used ``part.within`` new
    tokens while ``part.marker`` is not in it; then the row goes on as the model likes."""

    def __init__(self, tokenizer: Any, part: RequiredPart, width: int, stop: Sequence[str], eos_ids: Sequence[int]):
        self.tokenizer = tokenizer
        self.marker = re.compile(part.marker, re.IGNORECASE)
        self.insert = tokenizer(part.insert, add_special_tokens=False)["input_ids"]
        self.within = int(part.within)
        self.width = width  # the (left-padded) prompt width: new tokens start here in every row
        self.stop = [s for s in stop if s]
        self.eos = {int(t) for t in eos_ids}
        self.forcing: dict[int, list[int]] = {}  # row -> tokens of the insert still to write
        self.settled: set[int] = set()  # rows whose answer holds the marker (or got the insert)

    def _ends(self, text: str, token: int) -> bool:
        if token in self.eos:
            return True
        nxt = self.tokenizer.decode([token])
        return any(s in text[-len(s):] + nxt for s in self.stop)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        written = input_ids.shape[1] - self.width
        top = scores.argmax(-1).tolist()
        for r in range(scores.shape[0]):
            queue = self.forcing.get(r)
            if queue is None:
                if r in self.settled:
                    continue
                text = self.tokenizer.decode(input_ids[r, self.width:], skip_special_tokens=True)
                if self.marker.search(text):
                    self.settled.add(r)
                    continue
                # transformers' stop strings match across the prompt's end too: look at its last tokens
                tail = self.tokenizer.decode(input_ids[r, max(0, self.width - 4):], skip_special_tokens=True)
                if written < self.within and not self._ends(tail, top[r]):
                    continue
                queue = self.forcing[r] = list(self.insert)
                self.settled.add(r)
            token = queue.pop(0)
            if not queue:
                del self.forcing[r]
            scores[r] = float("-inf")
            scores[r, token] = 0.0
        return scores


def _cut(text: str, stop: Sequence[str] | None) -> str:
    """Text up to the first stop string."""
    if stop:
        cut = min((text.find(s) for s in stop if s and s in text), default=-1)
        if cut >= 0:
            return text[:cut]
    return text


def _load(path: Path, model_ref: str, dtype: Any) -> tuple[Any, Any, Any]:
    """Model, tokenizer and a weights id for a model reference (folder, hub id or .gguf file)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if path.suffix == ".gguf":
        if not path.is_file():
            raise LLMError(f"GGUF file not found: {path}")
        model, tok = _load_gguf(path, dtype)
        return model, tok, ("gguf", weights_hash(path))
    model = AutoModelForCausalLM.from_pretrained(model_ref, dtype=dtype)
    tok = AutoTokenizer.from_pretrained(model_ref)
    if path.is_dir():
        return model, tok, ("dir", weights_hash(path))
    return model, tok, ("hub", model_ref, getattr(model.config, "_commit_hash", None))


def _load_gguf(path: Path, dtype: Any):
    """Load a GGUF file as a plain dense (trainable, saveable) model and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype,
                                                 quantization_config=GgufConfig(dequantize=True))
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return model, tok


#: prompts scored together share at least this many leading tokens with each other (else each is scored whole)
SHARED_PREFIX_TOKENS = 64


def shared_prefix_groups(seqs: Sequence[Sequence[int]], min_prefix: int, max_group: int) -> list[tuple[int, np.ndarray]]:
    """Groups of at least 2 sequences that share their first ``n >= min_prefix`` tokens: ``(n, indices)``, with
    ``n`` short of every member's length (each keeps a token of its own to read the next token's scores after).
    Neighbours in sorted order join a group only where they share all of its prefix so far."""
    order = sorted(range(len(seqs)), key=lambda i: list(seqs[i]))
    groups: list[tuple[int, np.ndarray]] = []
    start, shared = 0, 0

    def close(end: int) -> None:
        if end - start >= 2:
            groups.append((shared, np.asarray(order[start:end], dtype=np.int64)))

    for pos in range(1, len(order) + 1):
        if pos < len(order) and pos - start < max_group:
            a, b = seqs[order[pos - 1]], seqs[order[pos]]
            lcp = next((j for j, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            # a group never shrinks its prefix to take a member in: prompts that share only the instruction
            # (every user's) would otherwise join one user's prompts that share the whole history
            if pos - start == 1 or lcp >= shared:
                n = min(lcp, len(a) - 1, len(b) - 1, shared if pos - start > 1 else lcp)
                if n >= min_prefix:
                    shared = n
                    continue
        close(pos)
        start, shared = pos, 0
    return groups


# ------------------------------------------------------------------------------------- worker processes
_WORKER: LocalLLM | None = None
_WORKER_ERROR = ""


def _start_worker(spec: dict, threads: int) -> None:
    """Process initializer: this worker's threads and its own copy of the model (an error is kept for the
    first task to raise: an initializer's own exception would only break the pool)."""
    import torch

    global _WORKER, _WORKER_ERROR
    torch.set_num_threads(threads)
    spec = dict(spec)
    weights = spec.pop("weights")
    try:
        _WORKER = LocalLLM(spec.pop("model"), **spec)
        if _WORKER._weights_id != weights:
            _WORKER_ERROR = "it loaded other weights than the main process (did the files change?)"
    except Exception as e:  # noqa: BLE001  (reported by _work)
        _WORKER_ERROR = f"{type(e).__name__}: {e}"


def _work(task: tuple) -> tuple:
    if _WORKER is None or _WORKER_ERROR:
        raise LLMError(f"an LLM worker process failed to start: {_WORKER_ERROR or 'no model'}")
    idx, method, args = task
    return idx, getattr(_WORKER, method)(*args)


class _WorkerPool:
    """``workers`` processes (spawned: no forked torch state) that each load the model once, sharing the
    threads this process would use."""

    def __init__(self, spec: dict, workers: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        import torch

        threads = max(1, torch.get_num_threads() // workers)
        self.executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_start_worker, initargs=(spec, threads))

    def map(self, tasks: list[tuple]):
        """Each task's result as it finishes (the pool balances the batches between workers)."""
        from concurrent.futures import as_completed

        futures = [self.executor.submit(_work, t) for t in tasks]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
