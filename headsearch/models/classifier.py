"""HeadedClassifier: the Transformer encoder classifier behind both model kinds, with head gating and pruning.

One implementation serves the built-in encoder and BERT-family checkpoints (post-LayerNorm encoder
layers, learned positions, mean pooling, a linear classifier), so gating, per-head recording and
structural pruning exist once. Head indices always refer to the dense model; a pruned model keeps
``head_index`` per layer so gates of shape ``[layers, num_heads]`` still apply to it.

Attention is computed with explicit matrix products, not ``scaled_dot_product_attention``: the
per-head probabilities are then available to recorders, and ``FlopCounterMode`` counts the score and
value products (it does not count CPU SDPA kernels).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from headsearch.errors import HeadConfigError, ModelError
from headsearch.heads import HeadConfig
from headsearch.models.headed import GateFn, HeadedModel, HeadRecord
from headsearch.models.shape import ModelShape

ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


@dataclass(frozen=True, kw_only=True)
class EncoderSpec:
    """Architecture of a HeadedClassifier (the dense shape; which heads remain is a HeadConfig)."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    head_dim: int
    intermediate_size: int
    max_positions: int
    num_classes: int
    type_vocab_size: int = 0
    activation: str = "gelu"
    layer_norm_eps: float = 1e-12
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("activation", "layer_norm_eps", "dropout"):
                continue
            minimum = 0 if f.name == "type_vocab_size" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ModelError(f"The '{f.name}' parameter of EncoderSpec must be an int >= {minimum}. Got {value!r}.")
        if self.num_classes < 2:
            raise ModelError(f"The 'num_classes' parameter of EncoderSpec must be >= 2. Got {self.num_classes}.")
        if self.activation not in ACTIVATIONS:
            raise ModelError(
                f"The 'activation' parameter of EncoderSpec must be one of {sorted(ACTIVATIONS)}. Got {self.activation!r}."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ModelError(f"The 'dropout' parameter of EncoderSpec must be in [0, 1). Got {self.dropout}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ModelError(f"Unknown EncoderSpec field(s) {sorted(unknown)}.")
        return cls(**data)


class SelfAttention(nn.Module):
    """Multi-head self-attention over a subset of the dense model's heads."""

    def __init__(self, hidden_size: int, head_dim: int, heads: tuple[int, ...]):
        super().__init__()
        inner = len(heads) * head_dim
        self.head_dim = head_dim
        self.heads = heads
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Initializing zero-element tensors")  # a layer with no head
            self.query = nn.Linear(hidden_size, inner)
            self.key = nn.Linear(hidden_size, inner)
            self.value = nn.Linear(hidden_size, inner)
            self.output = nn.Linear(inner, hidden_size)
        self.register_buffer("head_index", torch.tensor(heads, dtype=torch.long), persistent=False)
        self.recorder: HeadRecord | None = None

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor, gates: torch.Tensor | None) -> torch.Tensor:
        batch, seq, hidden = x.shape
        n = len(self.heads)
        if n == 0:
            # No head left: the block reduces to the output projection's bias (what all-zero gates give).
            return torch.zeros_like(x) + self.output.bias

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, seq, n, self.head_dim).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        # scale q (s x d values) rather than the scores (s x s per head) and add the mask in place:
        # two fewer passes over the score maps
        scores = torch.matmul(q * (self.head_dim ** -0.5), k.transpose(-1, -2))
        probs = scores.add_(mask_bias).softmax(dim=-1)
        context = torch.matmul(probs, v)  # [batch, n, seq, head_dim]
        if gates is not None:
            context = context * gates.index_select(1, self.head_index)[:, :, None, None]
        if self.recorder is not None:
            self.recorder.context.append(context)
            self.recorder.heads.append(self.heads)
            if self.recorder.want_attention:
                self.recorder.attention.append(probs)
        return self.output(context.transpose(1, 2).reshape(batch, seq, n * self.head_dim))

    def pruned(self, keep: tuple[int, ...]) -> SelfAttention:
        """A copy keeping only the heads ``keep`` (original indices), with their weights cut out."""
        missing = set(keep) - set(self.heads)
        if missing:
            raise HeadConfigError(f"Heads {sorted(missing)} were already pruned from this layer; cannot keep them.")
        d = self.head_dim
        rows = [self.heads.index(h) * d + i for h in keep for i in range(d)]
        idx = torch.tensor(rows, dtype=torch.long, device=self.query.weight.device)
        new = SelfAttention(self.query.in_features, d, keep).to(self.query.weight.device, self.query.weight.dtype)
        with torch.no_grad():
            for name in ("query", "key", "value"):
                src, dst = getattr(self, name), getattr(new, name)
                dst.weight.copy_(src.weight.index_select(0, idx))
                dst.bias.copy_(src.bias.index_select(0, idx))
            new.output.weight.copy_(self.output.weight.index_select(1, idx))
            new.output.bias.copy_(self.output.bias)
        return new


class EncoderLayer(nn.Module):
    """BERT's post-LayerNorm layer: attention, add & norm, feed-forward, add & norm."""

    def __init__(self, spec: EncoderSpec, heads: tuple[int, ...]):
        super().__init__()
        self.attention = SelfAttention(spec.hidden_size, spec.head_dim, heads)
        self.attention_norm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)
        self.intermediate = nn.Linear(spec.hidden_size, spec.intermediate_size)
        self.output = nn.Linear(spec.intermediate_size, spec.hidden_size)
        self.output_norm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)
        self.dropout = nn.Dropout(spec.dropout)
        self.activation = ACTIVATIONS[spec.activation]

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor, gates: torch.Tensor | None) -> torch.Tensor:
        return self.finish(x, self.attention(x, mask_bias, gates))

    def finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """The layer after its attention block (a runtime that computes attention its own way reuses it)."""
        x = self.attention_norm(x + self.dropout(attended))
        return self.output_norm(x + self.dropout(self.output(self.activation(self.intermediate(x)))))


class Embeddings(nn.Module):
    def __init__(self, spec: EncoderSpec):
        super().__init__()
        self.word_embeddings = nn.Embedding(spec.vocab_size, spec.hidden_size)
        self.position_embeddings = nn.Embedding(spec.max_positions, spec.hidden_size)
        # Single-sentence classification: token type 0 everywhere, so only row 0 is ever added.
        self.token_type_embeddings = nn.Embedding(spec.type_vocab_size, spec.hidden_size) \
            if spec.type_vocab_size else None
        self.LayerNorm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)
        self.dropout = nn.Dropout(spec.dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        seq = input_ids.shape[1]
        x = self.word_embeddings(input_ids) + self.position_embeddings.weight[:seq]
        if self.token_type_embeddings is not None:
            x = x + self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(x))


class HeadedClassifier(HeadedModel):
    """Encoder + mean pooling over real tokens + linear classifier; implements the HeadedModel contract."""

    can_skip_attention = True  # a layer with no head left keeps its residual path and FFN

    def __init__(self, spec: EncoderSpec, head_config: HeadConfig | None = None):
        super().__init__()
        config = head_config or HeadConfig.dense(spec.num_layers, spec.num_heads)
        config.check_fits(spec.num_layers, spec.num_heads, allow_empty_layers=self.can_skip_attention)
        self.spec = spec
        self.embeddings = Embeddings(spec)
        self.layers = nn.ModuleList(EncoderLayer(spec, heads) for heads in config.kept)
        self.dropout = nn.Dropout(spec.dropout)
        self.classifier = nn.Linear(spec.hidden_size, spec.num_classes)

    # -- the HeadedModel contract ---------------------------------------------------------------
    @property
    def shape(self) -> ModelShape:
        s = self.spec
        return ModelShape(num_layers=s.num_layers, num_heads=s.num_heads, head_dim=s.head_dim, hidden_size=s.hidden_size,
                          intermediate_size=s.intermediate_size, layer_linear_flops=2 * 2 * s.hidden_size * s.intermediate_size,
                          classifier_flops=2 * s.hidden_size * s.num_classes, vocab_size=s.vocab_size,
                          max_positions=s.max_positions, num_classes=s.num_classes)

    def reinitialized(self, seed: int) -> HeadedClassifier:
        torch.manual_seed(seed)
        return HeadedClassifier(self.spec)

    def is_classifier_parameter(self, name: str) -> bool:
        return name.startswith("classifier.")

    @property
    def head_config(self) -> HeadConfig:
        """The heads this model physically has (dense unless it was pruned)."""
        return HeadConfig(tuple(layer.attention.heads for layer in self.layers), self.spec.num_heads)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                gates: torch.Tensor | GateFn | None = None) -> torch.Tensor:
        """Logits ``[batch, classes]``. ``gates``: ``[layers, heads]`` or ``[batch, layers, heads]``,
        binary or soft, indexed by the dense model's heads; each head's output is multiplied by its gate.
        A ``GateFn`` instead computes each layer's ``[batch, heads]`` gates from that layer's input."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self.classify(self.encode(input_ids, attention_mask, gates), attention_mask)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               gates: torch.Tensor | GateFn | None = None) -> torch.Tensor:
        """Final token states ``[batch, seq, hidden]`` (what ``BertModel`` calls ``last_hidden_state``)."""
        return self.run_layers(self.embeddings(input_ids), attention_mask, gates)

    # -- the forward pass in pieces, so a caller can restart it at a layer (mask search reuses prefixes)
    def run_layers(self, x: torch.Tensor, attention_mask: torch.Tensor, gates: torch.Tensor | GateFn | None = None,
                   *, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Token states after layers ``start..stop-1`` given the states ``x`` entering layer ``start``."""
        gate_fn = gates if callable(gates) else None
        gates = None if gate_fn is not None else self.check_gates(gates, x.shape[0])
        mask_bias = self.mask_bias(attention_mask, x.dtype)
        for i in range(start, self.num_layers if stop is None else stop):
            g = gate_fn(i, x, attention_mask) if gate_fn is not None else None if gates is None else gates[:, i]
            x = self.layers[i](x, mask_bias, g)
        return x

    def prefix(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, gates: torch.Tensor,
               layers: int) -> list[torch.Tensor]:
        states, x = [], self.embeddings(input_ids)
        for i in range(layers):
            x = self.run_layers(x, attention_mask, gates, start=i, stop=i + 1)
            states.append(x)
        return states

    def resume(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, gates: torch.Tensor, entering: Any,
               start: int, *, copies: int = 1) -> torch.Tensor:
        x = self.embeddings(input_ids) if start == 0 else entering.repeat(copies, 1, 1)
        return self.classify(self.run_layers(x, attention_mask, gates, start=start), attention_mask)

    @staticmethod
    def mask_bias(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``[batch, 1, 1, seq]`` additive attention bias: 0 for real tokens, the dtype's minimum for padding."""
        return ((1.0 - attention_mask.to(dtype)) * torch.finfo(dtype).min)[:, None, None, :]

    def classify(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits from final token states: mean over real tokens, then the linear classifier."""
        mask = attention_mask.to(states.dtype)[..., None]
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.classifier(self.dropout(pooled))

    @contextmanager
    def record_heads(self, *, attention: bool = False) -> Iterator[HeadRecord]:
        """Capture every layer's per-head outputs (and attention maps) during forward passes in the block."""
        record = HeadRecord(want_attention=attention)
        for layer in self.layers:
            layer.attention.recorder = record
        try:
            yield record
        finally:
            for layer in self.layers:
                layer.attention.recorder = None

    def prune(self, config: HeadConfig) -> HeadedClassifier:
        """A structurally smaller copy keeping ``config``'s heads; this model is left unchanged."""
        config.check_fits(self.num_layers, self.num_heads, allow_empty_layers=self.can_skip_attention)
        pruned = copy.deepcopy(self)
        for layer, keep in zip(pruned.layers, config.kept, strict=True):
            layer.attention = layer.attention.pruned(keep)
        return pruned
