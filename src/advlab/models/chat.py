"""Load any Hugging Face causal LM as a chat model: ``load_chat_model(path_or_id) -> (model, tokenizer)``.

Rules (DESIGN.md): safetensors only, ``trust_remote_code`` off unless asked, a chat template is
required (or given with ``chat_template=``), the tokenizer gets a pad token and left padding for
batched generation, and the model's generation config stops on every end-of-turn token
(the generation config's EOS ids, the tokenizer's EOS and the special tokens the chat template
writes after an assistant turn). The model comes back in eval mode with frozen weights.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from advlab.errors import ConfigError, ModelError
from advlab.models.generation import greedy_generate, model_device, stop_token_ids
from advlab.models.weights import check_safetensors
from advlab.utils import resolve_device

DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "auto": "auto",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf")


def resolve_dtype(dtype: Any, device: Any) -> Any:
    """``None`` -> float32 on CPU, ``"auto"`` (the checkpoint's dtype) elsewhere; names -> torch dtypes."""
    if dtype is None:
        return torch.float32 if device.type == "cpu" else "auto"
    if isinstance(dtype, torch.dtype):
        return dtype
    name = DTYPES.get(str(dtype).strip().lower())
    if name is None:
        raise ConfigError(f"--dtype {dtype}: unknown dtype; use one of float32, float16, bfloat16, auto")
    return name if name == "auto" else getattr(torch, name)


def read_chat_template(source: str | Path) -> str:
    """A chat template from a ``.jinja`` file (or a template string containing ``{%``/``{{``).

    Files in the layout of github.com/chujiezheng/chat_templates (one tag per line, indented) are
    normalised the way that repository prescribes: indentation and line breaks *between* tags are
    removed (line breaks the template should emit are written as ``'\\n'`` inside its strings).
    """
    text = str(source)
    if "{%" in text or "{{" in text:
        return text
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(f"--chat-template {source}: no such file; pass a .jinja file with the chat template")
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--chat-template {source}: not UTF-8 text; save the template as UTF-8") from exc
    if "{%" not in raw and "{{" not in raw:
        raise ConfigError(f"--chat-template {source}: not a Jinja chat template (no '{{%' or '{{{{' tags)")
    if "\n" not in raw.strip():
        return raw.strip()
    return "".join(line.strip() for line in raw.splitlines())


def _check_local_dir(path: Path, name: str) -> None:
    if not path.exists():
        raise ModelError(f"{name}: no such model directory; pass a directory with config.json and *.safetensors")
    if not path.is_dir():
        raise ModelError(f"{name}: is a file, not a model directory; pass the directory that holds config.json")
    if not (path / "config.json").is_file():
        raise ModelError(f"{name}: not a model directory (no config.json); pass a saved Hugging Face model dir")
    files = [p.name for p in path.iterdir() if p.is_file()]
    if any(f.endswith(".safetensors") or f == "model.safetensors.index.json" for f in files):
        return
    if any(f.endswith(_WEIGHT_SUFFIXES) for f in files):
        raise ModelError(
            f"{name}: has only pickle/other weights (e.g. pytorch_model.bin); advlab loads safetensors "
            "only - convert with model.save_pretrained(DIR, safe_serialization=True)"
        )
    raise ModelError(f"{name}: no *.safetensors weights in the directory; save the model with safe_serialization=True")


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1 or not _HUB_ID.match(name)


def fix_tokenizer(tokenizer: Any) -> Any:
    """Pad token = EOS (or UNK) when missing; left padding for batched generation."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        elif tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_chat_model(
    path_or_id: str | Path,
    device: Any = "auto",
    dtype: Any = None,
    trust_remote_code: bool = False,
    chat_template: str | Path | None = None,
    require_chat_template: bool = True,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer, ready for chat generation and attacks.

    ``path_or_id``: a local directory (``config.json`` + ``*.safetensors`` + tokenizer files) or a hub
    id already in the local Hugging Face cache. ``device``: ``"auto"``/``"cpu"``/``"cuda:N"`` or a
    ``torch.device``. ``dtype``: ``None`` (float32 on CPU, the checkpoint's dtype elsewhere),
    ``"float32"``, ``"bfloat16"``, ``"float16"``, ``"auto"``. ``chat_template``: a ``.jinja`` file
    or template string replacing (or supplying) the tokenizer's template. ``require_chat_template=False``
    accepts a tokenizer without one (e.g. a raw-prompt classifier judge).

    Raises ModelError for a wrong path, a directory without safetensors, an unreachable hub id or
    a tokenizer without a chat template; ConfigError for a bad device/dtype/template file.
    """
    name = str(path_or_id).strip()
    if not name:
        raise ModelError("--model is empty; pass a model directory or a hub id")
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    template = read_chat_template(chat_template) if chat_template is not None else None

    local = Path(name).expanduser()
    if local.exists() or _looks_like_path(name):
        _check_local_dir(local, name)

        check_safetensors(local)
        source, offline_hint = str(local), ""
    else:
        source = name
        offline_hint = (
            " (no local directory of that name either; hub models must already be in the Hugging Face cache "
            "here - download them elsewhere and pass the directory)"
        )

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types; the user sees one line
        raise ModelError(f"{name}: cannot load the tokenizer ({_first_line(exc)}){offline_hint}") from exc
    if template is not None:
        tokenizer.chat_template = template
    if require_chat_template and not getattr(tokenizer, "chat_template", None):
        raise ModelError(
            f"{name}: the tokenizer has no chat template; pass --chat-template FILE.jinja (Python: "
            "chat_template=...), e.g. the template of the model's family from "
            "github.com/chujiezheng/chat_templates"
        )
    fix_tokenizer(tokenizer)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise ModelError(
                f"{name}: the model needs custom code; pass --trust-remote-code if you trust its authors"
            ) from exc
        raise ModelError(f"{name}: cannot load the model ({_first_line(exc)}){offline_hint}") from exc
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{name}: cannot load the model ({_first_line(exc)}){offline_hint}") from exc
    if not hasattr(model, "generate"):
        raise ModelError(f"{name}: not a causal language model; pass a *ForCausalLM checkpoint")
    model.to(dev)
    model.eval()
    model.requires_grad_(False)

    stops = stop_token_ids(model, tokenizer)  # the one rule of advlab.models.generation
    if model.generation_config is not None:
        if stops:
            model.generation_config.eos_token_id = stops if len(stops) > 1 else stops[0]
        if tokenizer.pad_token_id is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def generation_stop_ids(model: Any) -> list[int]:
    """The stop ids set on ``model.generation_config`` by :func:`load_chat_model` (always a list)."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        return []
    return [int(e) for e in eos] if isinstance(eos, (list, tuple)) else [int(eos)]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def load_generation_config_json(path: str | Path) -> dict[str, Any]:
    """Read a chat_templates ``generation_configs/*.json`` file (stop ids, system prompt)."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the generation config JSON ({_first_line(exc)})") from exc


def generate_chat(
    model: Any,
    tokenizer: Any,
    requests: Sequence[str],
    *,
    max_new_tokens: int,
    device: Any = None,
    batch_size: int | None = None,
) -> list[str]:
    """Greedy completions of one-turn chat requests through the model's chat template.

    Left padding, one batch per ``batch_size`` requests (default: all at once), decoded by
    :func:`~advlab.models.generation.greedy_generate` (stop ids: :func:`~advlab.models.generation.stop_token_ids`),
    special tokens removed.
    """
    device = device if device is not None else model_device(model)
    stop = stop_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stop[0] if stop else 0)
    step = batch_size or max(len(requests), 1)
    outs: list[str] = []
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for i in range(0, len(requests), step):
            texts = [
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": r}], tokenize=False, add_generation_prompt=True
                )
                for r in requests[i : i + step]
            ]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            rows = greedy_generate(model, input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                   max_new_tokens=max_new_tokens, eos_ids=stop, pad_id=pad)
            outs += [tokenizer.decode(row, skip_special_tokens=True) for row in rows]
    finally:
        tokenizer.padding_side = old_side
    return outs
