"""ModelShape: what the analytic cost model needs to know of a HeadedModel (no torch: plain numbers).

Every HeadedModel reports one (``model.shape``), read from its transformers modules. Heads are counted in
*units*, the things a HeadConfig keeps or removes: a query head, or, for grouped-query attention searched
with ``head_unit: kv_group``, a whole key/value group with its query heads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from headsearch.errors import ModelError


@dataclass(frozen=True, kw_only=True)
class ModelShape:
    """Dense shape of a classifier, for FLOPs, activation memory and timing inputs.

    ``num_heads``: units per layer (what a HeadConfig indexes); ``query_per_unit``: query heads per unit
    (1, or the group size for ``kv_group`` units); ``kv_group_size``: query heads sharing one key/value head
    in the dense model (1 without grouped-query attention). ``layer_linear_flops``: FLOPs per token of a
    layer's matrix products outside attention (the feed-forward block). ``classifier_flops``: FLOPs of
    the classification head, per example, or per token when ``classifier_per_token`` (decoders score
    every position, then read the last). ``embedding_flops``: FLOPs per token of matrix products before
    the first layer (ELECTRA's projection of small embeddings to the hidden size). ``relative_positions``
    and ``relative_terms``: DeBERTa's disentangled attention (rows of relative embeddings projected per
    head, and how many of c2p/p2c).
    """

    num_layers: int
    num_heads: int
    head_dim: int
    hidden_size: int
    intermediate_size: int
    layer_linear_flops: int
    classifier_flops: int
    vocab_size: int
    max_positions: int
    num_classes: int
    embedding_flops: int = 0
    query_per_unit: int = 1
    kv_group_size: int = 1
    classifier_per_token: bool = False
    relative_positions: int = 0
    relative_terms: int = 0

    def __post_init__(self) -> None:
        for name in ("num_layers", "num_heads", "head_dim", "hidden_size", "max_positions", "num_classes",
                     "query_per_unit", "kv_group_size", "vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelError(f"The '{name}' parameter of ModelShape must be an int >= 1. Got {value!r}.")

    @property
    def query_heads(self) -> int:
        """Query heads per layer in the dense model."""
        return self.num_heads * self.query_per_unit

    def kept_heads(self, units: tuple[int, ...]) -> tuple[int, int]:
        """``(query heads, key/value heads)`` a layer computes when it keeps ``units``.

        A key/value head stays while any query head of its group does (grouped-query attention)."""
        queries = [q for u in units for q in range(u * self.query_per_unit, (u + 1) * self.query_per_unit)]
        return len(queries), len({q // self.kv_group_size for q in queries})

    def to_dict(self) -> dict:
        return asdict(self)
