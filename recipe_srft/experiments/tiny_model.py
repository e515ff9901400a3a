"""A tiny random Qwen2 causal LM and a byte-level tokenizer with a chat template, built offline.

Used by the tests, the benchmarks and CPU smoke runs: nothing is downloaded. The
tokenizer maps every byte to one token (plus ``<|endoftext|>``, ``<|im_start|>``,
``<|im_end|>``), so any text tokenises, and its chat template is ChatML (Qwen's
convention), so verl's agent loop applies it exactly as for a real Qwen model.

    python -m recipe_srft.experiments.tiny_model OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_tokenizer():
    """Byte-level BPE without merges: 256 byte tokens + 3 special tokens, ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    alphabet = ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


#: Bumped when the default architecture changes, so that cached copies (``.cache/tiny_qwen2``) are rebuilt.
#: 2: head size 32 (vLLM's CPU attention supports 32-512, vllm/v1/attention/backends/cpu_attn.py:66; it was 16)
#: and an unpadded vocabulary (vLLM masks the logits past the tokenizer's size, verl's actor normalises over
#: all of them: with 61 random padding rows the two log-probs differed by 1.5e-3).
TINY_MODEL_VERSION = 2


def build_tiny_model(out_dir: str | os.PathLike, seed: int = 0, hidden_size: int = 128, num_layers: int = 2,
                     num_heads: int = 4, num_kv_heads: int = 2, intermediate_size: int = 128,
                     max_position_embeddings: int = 2048) -> Path:
    """Writes a random Qwen2ForCausalLM (fp32 safetensors) and its tokenizer to ``out_dir``.

    The defaults run on both rollout engines of the CPU runtime: head size ``hidden_size / num_heads`` = 32 and
    a vocabulary of exactly the tokenizer's size (see ``TINY_MODEL_VERSION``).
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    vocab_size = len(tokenizer)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=True
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "tiny_model.json").write_text(json.dumps({"version": TINY_MODEL_VERSION, "seed": seed, "vocab_size": vocab_size,
                                                     "hidden_size": hidden_size, "num_layers": num_layers}))
    return out


def is_current_tiny_model(path: str | os.PathLike) -> bool:
    """True if ``path`` holds a tiny model built by this version of :func:`build_tiny_model`."""
    meta = Path(path) / "tiny_model.json"
    if not (Path(path) / "model.safetensors").exists() or not meta.exists():
        return False
    return json.loads(meta.read_text()).get("version") == TINY_MODEL_VERSION


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_tiny_model(args.out_dir, seed=args.seed))


if __name__ == "__main__":
    main()
