"""Analytic cost of a HeadConfig: FLOPs per example, parameters, activation memory.

What is counted: every matrix product, as 2 FLOPs per multiply-add, the convention of
``torch.utils.flop_counter.FlopCounterMode`` (the tests check the two agree):

- per layer keeping ``q`` query heads and ``g`` key/value heads of dimension ``d``: the projections
  ``2*s*h*d*(q + 2g)`` (``g = q`` without grouped-query attention; a key/value head stays while any query
  head of its group does), attention scores ``Q K^T`` ``2*s*s*q*d``, value products ``P V``
  ``2*s*s*q*d``, output projection ``2*s*q*d*h``; DeBERTa's relative terms, per kept head and per c2p/p2c
  term, ``2*P*h*d`` for projecting the ``P`` relative embeddings and ``2*s*P*d`` for their scores;
- the layer's other matrix products (feed-forward, gated or not) ``s * layer_linear_flops``;
- the classification head, on the pooled vector (or on every token for decoders, which score all
  positions); projections before the first layer (ELECTRA's embeddings), per token.

Not counted (elementwise, a few percent of the total at these sizes): softmax, activations, norms,
bias additions, scaling, masking, pooling, rotary embeddings, embedding lookups. ``s`` is the sequence
length, ``h`` hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from headsearch.heads import HeadConfig
from headsearch.models.shape import ModelShape


@dataclass(frozen=True)
class FlopBreakdown:
    """FLOPs per example by component; ``total`` is their sum."""

    qkv: int
    attention_scores: int
    attention_values: int
    output_projection: int
    ffn: int
    classifier: int
    relative: int = 0
    embedding: int = 0

    @property
    def attention(self) -> int:
        """Everything that scales with the number of heads kept."""
        return self.qkv + self.attention_scores + self.attention_values + self.output_projection + self.relative

    @property
    def total(self) -> int:
        return self.attention + self.ffn + self.classifier + self.embedding


def count_flops(shape: ModelShape, config: HeadConfig, seq_len: int) -> FlopBreakdown:
    """FLOPs for one example of ``seq_len`` tokens through a model keeping ``config``'s heads."""
    config.check_fits(shape.num_layers, shape.num_heads, allow_empty_layers=True)
    s, h, d = seq_len, shape.hidden_size, shape.head_dim
    kept = [shape.kept_heads(units) for units in config.kept]  # (query heads, key/value heads) per layer
    p = shape.relative_positions
    return FlopBreakdown(
        qkv=sum(2 * s * h * d * (q + 2 * g) for q, g in kept),
        attention_scores=sum(2 * s * s * q * d for q, _ in kept),
        attention_values=sum(2 * s * s * q * d for q, _ in kept),
        output_projection=sum(2 * s * q * d * h for q, _ in kept),
        relative=sum(shape.relative_terms * q * 2 * d * p * (h + s) for q, _ in kept),
        ffn=shape.num_layers * s * shape.layer_linear_flops,
        classifier=shape.classifier_flops * (s if shape.classifier_per_token else 1),
        embedding=s * shape.embedding_flops,
    )


def count_params(model) -> int:
    """Parameters of a (pruned) model, counted on the model itself: exact for every family."""
    return sum(p.numel() for p in model.parameters())


def activation_bytes(shape: ModelShape, config: HeadConfig, seq_len: int, *, batch_size: int = 1,
                     bytes_per_value: int = 4) -> int:
    """Peak activation memory of inference, estimated as the largest layer's live tensors.

    Per layer: input and residual states (``2*s*h``), Q, K, V and context (``4*s*q*d``, a key/value
    head counted per query head as attention expands it), the score and probability maps (``2*q*s*s``)
    and the feed-forward hidden state (``s*f``). The estimate ignores allocator overhead and assumes
    tensors of earlier layers are freed (true under ``torch.inference_mode``).
    """
    config.check_fits(shape.num_layers, shape.num_heads, allow_empty_layers=True)
    s, h, f, d = seq_len, shape.hidden_size, shape.intermediate_size, shape.head_dim
    per_layer = [2 * s * h + 4 * s * q * d + 2 * q * s * s + s * f for q, _ in map(shape.kept_heads, config.kept)]
    return max(per_layer) * batch_size * bytes_per_value


def mean_flops(shape: ModelShape, counts: Sequence[Sequence[int]], seq_len: int) -> float:
    """Mean FLOPs per example of a model run with per-example head counts: ``counts [examples][layers]`` heads each
    example ran per layer (a router's trace; the router's own FLOPs are not included)."""
    rows = [tuple(row) for row in counts]
    per_set = {key: count_flops(shape, HeadConfig(tuple(tuple(range(c)) for c in key), shape.num_heads), seq_len).total
               for key in set(rows)}
    return sum(per_set[row] for row in rows) / len(rows)
