"""The transformers backend: AutoTokenizer + AutoModelForCausalLM, left-padded batched generation.

torch and transformers are imported here only, when a run actually needs this backend.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import Any, Optional

from evaluator.backends.base import Completion, GenerationParams, apply_chat_template, truncate_at_stop


class HFBackend:
    name = "hf"

    def __init__(
        self,
        model_path: str,
        *,
        revision: Optional[str] = None,
        trust_remote_code: bool = False,
        dtype: Optional[str] = None,
        batch_size: int = 8,
        device: Optional[str] = None,
        add_bos_token: bool = False,
        prefill_alone: bool = True,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        # On a CPU, bf16 matmuls are slow or unsupported: compute in float32 there.
        torch_dtype = getattr(torch, dtype) if (dtype and self.device != "cpu") else (
            torch.float32 if self.device == "cpu" else torch.bfloat16)  # fmt: skip
        self.tokenizer = AutoTokenizer.from_pretrained(
            model_path, revision=revision, trust_remote_code=trust_remote_code
        )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            model_path, revision=revision, trust_remote_code=trust_remote_code, dtype=torch_dtype
        ).to(self.device)
        self.model.eval()
        if self.device == "cpu":
            _additive_mask_on_cpu(self.model)
        self.batch_size = batch_size
        self.prefill_alone = self.device == "cpu" and prefill_alone
        params = inspect.signature(self.model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5.2x
        # lm-evaluation-harness does not add a BOS token for causal models unless asked.
        self.add_bos_token = add_bos_token
        self._args = {
            "model": model_path, "revision": revision, "trust_remote_code": trust_remote_code,
            "dtype": str(torch_dtype).replace("torch.", ""), "device": self.device,
            "batch_size": batch_size, "add_bos_token": add_bos_token, "prefill_alone": self.prefill_alone,
            "attn_implementation": getattr(self.model.config, "_attn_implementation", None),
        }  # fmt: skip

    def render_chat(self, messages: list[dict[str, str]]) -> Optional[str]:
        return apply_chat_template(self.tokenizer, messages)

    def engine_args(self) -> dict[str, Any]:
        return dict(self._args)

    def peak_memory_gb(self) -> Optional[float]:
        if self.device.startswith("cuda"):
            return self._torch.cuda.max_memory_allocated() / 1e9
        return None

    def close(self) -> None:
        del self.model

    def _prefilled_alone(self, enc: Any, lengths: list[int], max_new_tokens: int) -> Optional[dict[str, Any]]:
        """On a CPU: each prompt's prefill computed alone, then the batch decoded together.

        A left-padded batch prefill needs an explicit padding mask, and SDPA with a mask computes
        the whole L x L score matrix, where one unpadded prompt gets the causal kernel that skips
        the upper half: on a CPU there is no parallelism to win back, so a padded 16-prompt
        prefill cost ~2x sixteen single ones.  Here each prompt (all but its last token) runs
        alone; the KV caches are left-padded into one batch cache, and ``generate`` continues from
        it with the usual attention mask, so positions, masks and greedy tokens are those of the
        plain batched call (tests compare with single-prompt generation).  The batch cache holds
        the prompts and all ``max_new_tokens`` from the start (``_reserved_layer_class``).  Returns
        the generate inputs, or None to run the plain batched call (nothing padded, one prompt, or
        a model whose cache is not a plain per-layer key/value cache, e.g. sliding-window layers)."""
        ids, mask = enc["input_ids"], enc["attention_mask"]
        if len(lengths) < 2 or len(set(lengths)) == 1 or min(lengths) < 2:
            return None
        width = ids.shape[1]
        try:
            from transformers import DynamicCache

            reserved_layer = _reserved_layer_class()
            batch = DynamicCache()
            for i, (row, n) in enumerate(zip(ids, lengths)):
                out = self.model(input_ids=row[None, width - n : width - 1], use_cache=True, logits_to_keep=1)
                own = (out["cache"] if "cache" in out else out["past_key_values"]).layers
                if i == 0:
                    batch.layers = [reserved_layer(width + max_new_tokens) for _ in own]
                for layer, mine in zip(batch.layers, own, strict=True):
                    if mine.keys.shape[-2] != n - 1 or mine.values.shape[-2] != n - 1:
                        raise ValueError("the cache does not hold every prompt position (sliding window?)")
                    layer.place(i, len(lengths), width - n, mine.keys, mine.values)
        except (ImportError, TypeError, ValueError, AttributeError) as exc:
            self.prefill_alone = False  # this model cannot: plain batched calls from now on
            self._args["prefill_alone"] = f"off: {type(exc).__name__}: {exc}"[:200]
            return None
        for layer in batch.layers:
            layer.settle(width - 1)
        return {"input_ids": ids, "attention_mask": mask, self._cache_kwarg: batch}

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[list[Completion]]:
        """Batches of similar-length prompts (longest first), restored to the caller's order."""
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        results: list[Optional[list[Completion]]] = [None] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            for i, completions in zip(idx, self._generate_batch([prompts[i] for i in idx], params)):
                results[i] = completions
        return [r for r in results if r is not None]

    def _generate_batch(self, prompts: list[str], params: GenerationParams) -> list[list[Completion]]:
        torch = self._torch
        enc = self.tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=self.add_bos_token
        ).to(self.device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "num_return_sequences": params.n,
        }
        if params.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
            if params.seed is not None:
                torch.manual_seed(params.seed)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        prompt_lengths = enc["attention_mask"].sum(dim=1).tolist()
        with torch.inference_mode():
            alone = self.prefill_alone and params.n == 1
            inputs = self._prefilled_alone(enc, prompt_lengths, params.max_tokens) if alone else None
            out = self.model.generate(**(inputs or enc), **kwargs)
        width = enc["input_ids"].shape[1]
        eos = self.tokenizer.eos_token_id
        completions: list[list[Completion]] = []
        for p in range(len(prompts)):
            group = []
            for k in range(params.n):
                ids = out[p * params.n + k, width:].tolist()
                # Generated tokens end at the first EOS (the rest is padding).
                n_tokens = next((i + 1 for i, t in enumerate(ids) if t == eos), len(ids))
                if n_tokens == len(ids) and self.tokenizer.pad_token_id != eos:
                    n_tokens = len([t for t in ids if t != self.tokenizer.pad_token_id])
                text = self.tokenizer.decode(ids[:n_tokens], skip_special_tokens=True)
                text, stopped = truncate_at_stop(text, params.stop)
                hit_eos = n_tokens < len(ids) or (ids and ids[n_tokens - 1] == eos)
                group.append(Completion(
                    text=text, tokens=n_tokens, prompt_tokens=int(prompt_lengths[p]),
                    finish_reason="stop" if (stopped or hit_eos) else "length",
                ))  # fmt: skip
            completions.append(group)
        return completions


@functools.cache
def _reserved_layer_class() -> type:
    """transformers' DynamicLayer, with keys and values kept in a buffer reserved for the whole call.

    DynamicLayer concatenates the whole cache with each new token: on a CPU, with ~1,400-token
    few-shot prompts in a 16-row batch, those copies (and the page faults of each new multi-MB
    tensor) were 36% of the batch's CPU time in torch ops.  Here prompt and generated positions are written in
    place, and attention gets a view of the filled part, so it computes exactly what it did over
    the concatenated tensor.  Anything else that reshapes the cache (beam reordering, a batch
    expanded for n > 1, a generation longer than reserved) falls back to DynamicLayer's own code.
    """
    from transformers.cache_utils import DynamicLayer

    class ReservedLayer(DynamicLayer):  # type: ignore[misc,valid-type]
        def __init__(self, capacity: int) -> None:
            super().__init__()
            self.capacity = capacity
            self.buffers: Optional[tuple[Any, Any]] = None

        def place(self, row: int, rows: int, offset: int, keys: Any, values: Any) -> None:
            """One prompt's own cache (batch of one) as row ``row`` of ``rows``, from position
            ``offset`` on; the left padding before it stays zero (and masked)."""
            if self.buffers is None:
                shape = (rows, keys.shape[1], self.capacity, keys.shape[-1])
                self.buffers = (keys.new_zeros(shape), values.new_zeros(shape))
                self.lazy_initialization(keys, values)
            end = offset + keys.shape[-2]
            self.buffers[0][row, :, offset:end] = keys[0]
            self.buffers[1][row, :, offset:end] = values[0]

        def settle(self, length: int) -> None:
            """The cache holds positions [0, length) of every row."""
            assert self.buffers is not None
            self.keys, self.values = (b[:, :, :length] for b in self.buffers)

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            n = self.get_seq_length()
            end = n + key_states.shape[-2]
            keys, values = self.buffers or (None, None)
            if (keys is None or end > keys.shape[-2] or keys.shape[0] != key_states.shape[0]
                    or self.keys.data_ptr() != keys.data_ptr()):  # fmt: skip
                self.buffers = None  # reshaped elsewhere: transformers' own concatenation from now on
                return super().update(key_states, value_states, *args, **kwargs)
            keys[:, :, n:end] = key_states
            values[:, :, n:end] = value_states
            self.settle(end)
            return self.keys, self.values

    return ReservedLayer


ADDITIVE_MASK_SDPA = "sdpa_additive_mask"


def _additive_mask_on_cpu(model: Any) -> None:
    """Give a CPU model that runs SDPA its padding mask in additive (0 / -inf) form.

    A left-padded batch needs a 4-D padding mask.  transformers hands SDPA a boolean one, and
    torch's CPU SDPA converts it with ``torch.where`` in every layer: half of the prefill time of
    a padded 16-prompt batch on the tiny test model.  The same SDPA function, given that mask
    converted once per forward (and still no mask at all where nothing is padded), computes the same result
    (tests check token-identical output against unpadded single-prompt generation).  Switched only
    for models that already run SDPA through transformers' attention interface; the model's
    ``config._attn_implementation`` (recorded in the run's engine arguments) says whether it was.
    """
    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return
    try:
        import torch
        from transformers import AttentionInterface, AttentionMaskInterface
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
        from transformers.masking_utils import sdpa_mask
    except ImportError:  # an older transformers without the attention interfaces
        return

    def additive_sdpa_mask(*args: Any, dtype: Any = torch.float32, **kwargs: Any) -> Any:
        # SDPA's own mask, so that an unpadded batch still gets no mask at all (is_causal)
        mask = sdpa_mask(*args, **kwargs)
        if mask is None or mask.dtype != torch.bool:
            return mask
        return torch.where(mask, torch.zeros((), device=mask.device, dtype=dtype), torch.finfo(dtype).min)

    AttentionInterface.register(ADDITIVE_MASK_SDPA, sdpa_attention_forward)
    AttentionMaskInterface.register(ADDITIVE_MASK_SDPA, additive_sdpa_mask)
    try:
        model.set_attn_implementation(ADDITIVE_MASK_SDPA)
    except (AttributeError, ValueError):  # a model that cannot switch keeps plain SDPA
        pass
