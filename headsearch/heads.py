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
