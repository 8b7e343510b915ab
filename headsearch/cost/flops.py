"""Analytic cost of a HeadConfig: FLOPs per example, parameters, activation memory.

What is counted: every matrix product, as 2 FLOPs per multiply-add, the convention of
``torch.utils.flop_counter.FlopCounterMode`` (the tests check the two agree):

- per layer with ``k`` heads kept (``a = k * head_dim``): Q, K, V projections ``3 * 2*s*h*a``;
  attention scores ``Q K^T`` ``2*s*s*a``; value products ``P V`` ``2*s*s*a``; output projection
  ``2*s*a*h``; feed-forward ``2 * 2*s*h*f``;
- the classifier ``2*h*C`` on the pooled vector.

Not counted (elementwise, a few percent of the total at these sizes): softmax, GELU, LayerNorm, bias
additions, scaling, masking, pooling, embedding lookups. ``s`` is the sequence length, ``h`` hidden,
``f`` the FFN width, ``C`` classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from headsearch.heads import HeadConfig
from headsearch.models.classifier import EncoderSpec


@dataclass(frozen=True)
class FlopBreakdown:
    """FLOPs per example by component; ``total`` is their sum."""

    qkv: int
    attention_scores: int
    attention_values: int
    output_projection: int
    ffn: int
    classifier: int

    @property
    def attention(self) -> int:
        """Everything that scales with the number of heads kept."""
        return self.qkv + self.attention_scores + self.attention_values + self.output_projection

    @property
    def total(self) -> int:
        return self.attention + self.ffn + self.classifier


def count_flops(spec: EncoderSpec, config: HeadConfig, seq_len: int) -> FlopBreakdown:
    """FLOPs for one example of ``seq_len`` tokens through a model keeping ``config``'s heads."""
    config.check_fits(spec.num_layers, spec.num_heads, allow_empty_layers=True)
    s, h, f = seq_len, spec.hidden_size, spec.intermediate_size
    inner = [k * spec.head_dim for k in config.counts]
    return FlopBreakdown(
        qkv=sum(3 * 2 * s * h * a for a in inner),
        attention_scores=sum(2 * s * s * a for a in inner),
        attention_values=sum(2 * s * s * a for a in inner),
        output_projection=sum(2 * s * a * h for a in inner),
        ffn=spec.num_layers * 2 * 2 * s * h * f,
        classifier=2 * h * spec.num_classes,
    )


def count_params(spec: EncoderSpec, config: HeadConfig) -> int:
    """Parameters of the structurally pruned model (equal to ``sum(p.numel())`` of ``model.prune(config)``)."""
    config.check_fits(spec.num_layers, spec.num_heads, allow_empty_layers=True)
    h, f = spec.hidden_size, spec.intermediate_size
    embeddings = (spec.vocab_size + spec.max_positions + spec.type_vocab_size) * h + 2 * h
    per_layer_fixed = h + (h * f + f) + (f * h + h) + 4 * h  # output bias, FFN, two LayerNorms
    attention = sum(3 * (h * a + a) + a * h for a in (k * spec.head_dim for k in config.counts))
    return embeddings + spec.num_layers * per_layer_fixed + attention + h * spec.num_classes + spec.num_classes


def activation_bytes(spec: EncoderSpec, config: HeadConfig, seq_len: int, *, batch_size: int = 1,
                     bytes_per_value: int = 4) -> int:
    """Peak activation memory of inference, estimated as the largest layer's live tensors.

    Per layer: input and residual states (``2*s*h``), Q, K, V and context (``4*s*a``), the score and
    probability maps (``2*k*s*s``) and the FFN hidden state (``s*f``). The estimate ignores allocator
    overhead and assumes tensors of earlier layers are freed (true under ``torch.inference_mode``).
    """
    config.check_fits(spec.num_layers, spec.num_heads, allow_empty_layers=True)
    s, h, f = seq_len, spec.hidden_size, spec.intermediate_size
    per_layer = [2 * s * h + 4 * s * k * spec.head_dim + 2 * k * s * s + s * f for k in config.counts]
    return max(per_layer) * batch_size * bytes_per_value
