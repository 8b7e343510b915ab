"""HeadConfig: which attention heads each layer keeps.

Immutable and hashable so that a study can memoise evaluations of identical configurations.
Head indices always refer to the *original* (dense) model's heads, also after pruning.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headsearch.errors import HeadConfigError


@dataclass(frozen=True)
class HeadConfig:
    """Kept heads per layer: ``kept[l]`` is the sorted tuple of head indices layer ``l`` keeps."""

    kept: tuple[tuple[int, ...], ...]
    num_heads: int

    def __post_init__(self) -> None:
        if isinstance(self.num_heads, bool) or not isinstance(self.num_heads, int) or self.num_heads < 1:
            raise HeadConfigError(f"HeadConfig.num_heads must be an int >= 1. Got {self.num_heads!r} instead.")
        if isinstance(self.kept, str | bytes) or not isinstance(self.kept, Iterable):
            raise HeadConfigError(f"HeadConfig.kept must be a sequence of per-layer head lists. Got {self.kept!r}.")
        layers = []
        for layer, heads in enumerate(self.kept):
            if isinstance(heads, str | bytes) or not isinstance(heads, Iterable):
                raise HeadConfigError(f"Layer {layer} of HeadConfig.kept must be a list of head indices. Got {heads!r}.")
            heads = list(heads)
            for h in heads:
                if isinstance(h, bool) or not isinstance(h, int):
                    raise HeadConfigError(f"Layer {layer} lists head {h!r}; head indices must be ints.")
                if not 0 <= h < self.num_heads:
                    raise HeadConfigError(
                        f"Layer {layer} lists head {h}, out of range for a model with {self.num_heads} heads "
                        f"per layer (valid: 0..{self.num_heads - 1})."
                    )
            if len(set(heads)) != len(heads):
                dup = sorted({h for h in heads if heads.count(h) > 1})
                raise HeadConfigError(f"Layer {layer} lists head(s) {dup} more than once.")
            layers.append(tuple(sorted(heads)))
        if not layers:
            raise HeadConfigError("HeadConfig.kept must describe at least one layer.")
        object.__setattr__(self, "kept", tuple(layers))

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def dense(cls, num_layers: int, num_heads: int) -> HeadConfig:
        """Every head of every layer."""
        return cls(tuple(tuple(range(num_heads)) for _ in range(num_layers)), num_heads)

    @classmethod
    def top(cls, scores: Sequence[Sequence[float]], total: int) -> HeadConfig:
        """The ``total`` highest-scored heads overall (``scores``: ``[layers, heads]``, higher kept first), with
        the best head of every layer always kept."""
        rows = _rows(scores)
        num_heads = len(rows[0])
        kept = {(layer, max(range(num_heads), key=lambda h: row[h])) for layer, row in enumerate(rows)}
        ranked = sorted(((s, layer, h) for layer, row in enumerate(rows) for h, s in enumerate(row)), reverse=True)
        for _, layer, h in ranked:
            if len(kept) >= total:
                break
            kept.add((layer, h))
        return cls(tuple(tuple(h for (lay, h) in kept if lay == layer) for layer in range(len(rows))), num_heads)

    @classmethod
    def top_per_layer(cls, scores: Sequence[Sequence[float]], counts: Sequence[int]) -> HeadConfig:
        """Each layer's ``counts[layer]`` highest-scored heads (ties: the lower index)."""
        rows = _rows(scores)
        return cls(tuple(tuple(sorted(range(len(row)), key=lambda h: -row[h])[:k]) for row, k in zip(rows, counts, strict=True)),
                   len(rows[0]))

    @classmethod
    def first(cls, order: Sequence[tuple[int, int]], total: int, num_layers: int, num_heads: int) -> HeadConfig:
        """The first ``total`` heads of a keeping ``order`` of ``(layer, head)`` pairs (a gates' checkpoint order)."""
        chosen = set(order[:total])
        return cls(tuple(tuple(h for h in range(num_heads) if (i, h) in chosen) for i in range(num_layers)), num_heads)

    @classmethod
    def from_mask(cls, mask: Sequence[Sequence[float | bool]]) -> HeadConfig:
        """From a ``[layers, heads]`` 0/1 mask (nested lists, numpy array or tensor)."""
        rows = [list(row) for row in mask]
        widths = {len(r) for r in rows}
        if len(widths) != 1:
            raise HeadConfigError(f"A head mask must be rectangular [layers, heads]. Got row lengths {sorted(widths)}.")
        return cls(tuple(tuple(i for i, v in enumerate(r) if float(v) > 0.5) for r in rows), widths.pop())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeadConfig:
        if not isinstance(data, Mapping) or "kept" not in data or "num_heads" not in data:
            raise HeadConfigError("A HeadConfig dict needs the keys 'kept' (list of lists) and 'num_heads' (int).")
        config = cls(tuple(tuple(layer) for layer in data["kept"]), data["num_heads"])
        if "num_layers" in data and data["num_layers"] != config.num_layers:
            raise HeadConfigError(
                f"HeadConfig says num_layers={data['num_layers']} but lists {config.num_layers} layers."
            )
        return config

    @classmethod
    def from_json(cls, text: str) -> HeadConfig:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise HeadConfigError(f"Not valid JSON for a HeadConfig: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> HeadConfig:
        path = Path(path)
        if not path.is_file():
            raise HeadConfigError(f"Head config file not found: {path}")
        try:
            return cls.from_json(path.read_text())
        except HeadConfigError as exc:
            raise HeadConfigError(f"{path}: {exc}") from exc

    # -- views ----------------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.kept)

    @property
    def counts(self) -> tuple[int, ...]:
        """Heads kept per layer."""
        return tuple(len(layer) for layer in self.kept)

    @property
    def total_kept(self) -> int:
        return sum(self.counts)

    @property
    def total_heads(self) -> int:
        return self.num_layers * self.num_heads

    @property
    def fraction_kept(self) -> float:
        return self.total_kept / self.total_heads

    @property
    def has_empty_layer(self) -> bool:
        return 0 in self.counts

    def mask(self) -> list[list[float]]:
        """``[layers, heads]`` 0/1 gates (turn into a tensor with ``torch.tensor(config.mask())``)."""
        return [[1.0 if h in set(layer) else 0.0 for h in range(self.num_heads)] for layer in self.kept]

    def is_subset_of(self, other: HeadConfig) -> bool:
        return self.num_heads == other.num_heads and all(
            set(a) <= set(b) for a, b in zip(self.kept, other.kept, strict=True)
        )

    def check_fits(self, num_layers: int, num_heads: int, *, allow_empty_layers: bool) -> None:
        """Raise ``HeadConfigError`` unless this configuration can be applied to such a model."""
        if self.num_layers != num_layers:
            raise HeadConfigError(
                f"HeadConfig has {self.num_layers} layers but the model has {num_layers}."
            )
        if self.num_heads != num_heads:
            raise HeadConfigError(
                f"HeadConfig is for {self.num_heads} heads per layer but the model has {num_heads}."
            )
        if self.has_empty_layer and not allow_empty_layers:
            empty = [i for i, c in enumerate(self.counts) if c == 0]
            raise HeadConfigError(
                f"Layer(s) {empty} keep no head, but this model cannot skip its attention blocks; keep at least one "
                "head per layer."
            )

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "kept": [list(layer) for layer in self.kept],
            "fraction_kept": round(self.fraction_kept, 6),
        }

    def to_json(self) -> str:
        """JSON with one line per layer, so a diff of two configurations reads layer by layer."""
        d = self.to_dict()
        layers = ",\n    ".join(json.dumps(layer) for layer in d["kept"])
        return (f'{{\n  "num_layers": {d["num_layers"]},\n  "num_heads": {d["num_heads"]},\n'
                f'  "fraction_kept": {d["fraction_kept"]},\n  "kept": [\n    {layers}\n  ]\n}}')

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    def __str__(self) -> str:
        return f"HeadConfig({self.total_kept}/{self.total_heads} heads, per layer {list(self.counts)})"


def heads_for_budget(budget: float, num_layers: int, num_heads: int) -> int:
    """Heads kept at budget ``b`` (a fraction of all heads): ``round(b * N)``, at least one per layer, at most all."""
    if not 0.0 < budget <= 1.0:
        raise ValueError(f"A budget must be in (0, 1]. Got {budget!r}.")
    return max(num_layers, min(num_layers * num_heads, round(budget * num_layers * num_heads)))


def split_heads(total: int, shares: Sequence[float], num_heads: int) -> list[int]:
    """Heads per layer for ``total`` heads split in proportion to ``shares`` (one per layer), each layer
    between 1 and ``num_heads``: every layer gets one, then each further head goes to the layer of highest
    ``share / heads given so far`` that still has room (the highest-averages method; ties to the layer with
    fewer heads, then the first)."""
    layers = len(shares)
    if not layers <= total <= layers * num_heads:
        raise ValueError(f"total must be between {layers} and {layers * num_heads} heads. Got {total}.")
    if any(s < 0 for s in shares):
        raise ValueError(f"shares must be >= 0. Got {list(shares)}.")
    weights = list(shares) if sum(shares) > 0 else [1.0] * layers  # all zero: an even split
    counts = [1] * layers
    for _ in range(total - layers):
        room = [i for i in range(layers) if counts[i] < num_heads]
        counts[max(room, key=lambda i: (weights[i] / counts[i], -counts[i], -i))] += 1
    return counts


def _rows(scores: Sequence[Sequence[float]]) -> list[list[float]]:
    """``[layers, heads]`` scores (nested lists, numpy array or tensor) as lists of floats."""
    rows = [[float(v) for v in row] for row in scores]
    if not rows or not rows[0] or len({len(r) for r in rows}) != 1:
        raise HeadConfigError("Head scores must be a non-empty [layers, heads] table.")
    return rows
