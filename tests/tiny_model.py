"""A tiny, randomly initialised causal LM and a trained byte-level BPE tokenizer, built locally.

The hub cannot be reached in tests, so this writes a real transformers checkpoint folder
(config.json, model.safetensors, tokenizer.json, chat template) that the evaluator loads
through exactly the code path a hub model takes (AutoTokenizer / AutoModelForCausalLM
``from_pretrained``).  ``overfit`` trains a copy on given (prompt, completion) pairs until
greedy decoding reproduces the completions, so an end-to-end run must score 1.0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Optional

DATA = Path(__file__).resolve().parent / "data"

# The catalog row the tests evaluate: a tiny model in the math, biomedical and general categories.
TINY_FIXTURE = """
models:
  - id: tiny_llama
    name: Tiny Llama (test)
    hub_id: local/tiny-llama
    family: llama
    architecture: LlamaForCausalLM
    kind: causal-lm
    params_b: 0.0001
    native_context: 4096
    max_context: 4096
    license_id: apache-2.0
    chat_template: true
    primary_category: mathematical_reasoning
    other_categories: [biomedical_specialists, general_purpose, coding_specialists]
    evaluation_batch_size: 4
    sources: [https://example.org/tiny-llama]
"""


def seed_catalog(url: str, tmp: Path) -> str:
    """Migrate ``url`` and seed the built-in catalog plus the tiny model's row."""
    from catalog import db as dbmod
    from catalog import fixtures as fx

    (tmp / "tiny.yaml").write_text(TINY_FIXTURE)
    dbmod.upgrade(url)
    engine = dbmod.make_engine(url)
    fx.seed(engine, fx.read_files([*fx.builtin_fixture_files(), tmp / "tiny.yaml"]))
    engine.dispose()
    return url


def test_corpus() -> list[str]:
    """Every line of the local test data: what the tiny tokenizer is trained on."""
    return [line for f in sorted(DATA.rglob("*.json*")) for line in f.read_text().splitlines()]


def gold_completion(dataset: str, row: dict[str, Any]) -> str:
    """What a perfect model would answer (for ``overfit``): gsm8k's answer up to its stop
    sequence, as a real model would write it; a letter answer for multiple choice."""
    if dataset == "gsm8k":
        return " " + row["answer"] + "\n\nQuestion:"
    return f"The answer is ({row['answer_idx']})."

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL = ["<pad>", "<s>", "</s>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]


def build_tokenizer(corpus: Iterable[str], vocab_size: int = 1024):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   additional_special_tokens=SPECIAL[3:])  # fmt: skip
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(out: Path, corpus: Optional[Sequence[str]] = None, seed: int = 0) -> Path:
    """Write a random 2-layer Llama with a BPE tokenizer trained on ``corpus`` to ``out``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(corpus if corpus is not None else test_corpus())
    torch.manual_seed(seed)
    # 2 heads of 32 dimensions: vLLM's CPU attention supports head sizes 32, 64, 80, ... (not 16).
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def overfit(src: Path, out: Path, pairs: Sequence[tuple[str, str]], steps: int = 300, lr: float = 3e-3) -> Path:
    """Train a copy of the model at ``src`` so that greedy decoding maps each prompt to its
    completion followed by EOS (loss on the completion tokens only)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    model.train()
    examples = []
    for prompt, completion in pairs:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = torch.tensor([p + c])
        labels = torch.tensor([[-100] * len(p) + c])
        examples.append((ids, labels))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    torch.manual_seed(0)
    for step in range(steps):
        ids, labels = examples[step % len(examples)]
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


class CountingBackend:
    """The real HF backend, loaded once per process and path, counting what it is asked to
    generate; ``fail_on_call`` raises KeyboardInterrupt on that call (a Ctrl-C mid-run)."""

    _cache: dict[str, Any] = {}

    def __init__(self, path: Path, fail_on_call: Optional[int] = None) -> None:
        from evaluator.backends.hf import HFBackend

        key = str(path)
        if key not in self._cache:
            self._cache[key] = HFBackend(key, batch_size=4)
        self.inner = self._cache[key]
        self.name = "hf"
        self.calls: list[int] = []
        self.fail_on_call = fail_on_call

    def render_chat(self, messages: list[dict[str, str]]) -> Optional[str]:
        return self.inner.render_chat(messages)

    def generate(self, prompts, params):  # type: ignore[no-untyped-def]
        self.calls.append(len(prompts))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise KeyboardInterrupt
        return self.inner.generate(prompts, params)

    def engine_args(self) -> dict[str, Any]:
        return self.inner.engine_args()

    def peak_memory_gb(self) -> Optional[float]:
        return None

    def close(self) -> None:  # the cached model stays loaded for the next test
        pass
