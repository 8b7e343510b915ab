"""Structural head pruning of a Hugging Face layer, in place: the real modules keep their classes and names.

Query heads are cut out of the query projection's rows (and any per-head projection's) and the output
projection's columns. Key/value heads are shared by a group of query heads under grouped-query attention
(``G`` query heads per key/value head): a key/value head's rows go only when its whole group is gone.
When every surviving group keeps the same number ``m`` of query heads, the layer stays the stock
transformers layout with ``num_key_value_groups = m``. When they differ, the key and value projections
become ``RepeatedHeads``: they compute each surviving key/value head once and repeat it for each of its
query heads (exact, since rotary embeddings act on every head alike), and ``num_key_value_groups = 1``.
A layer left with no head gets ``EmptyAttention``: its output is the output projection's bias, what
all-zero gates give.

This file imports torch alone: every export carries a verbatim copy (``headsearch_surgery.py``) that its
generated modelling file uses to rebuild the pruned shapes under plain transformers (``hf.standalone``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn


@dataclass(frozen=True, kw_only=True)
class Layout:
    """Where one layout of transformers' modelling code keeps its attention. ``layers``: the list of layers,
    from ``model.base_model``; ``core``: the module that turns a layer's states into the heads' concatenated
    outputs (replaced by an empty stand-in when a layer keeps no head); ``query``/``key``/``value``/``output``:
    the projections, paths from the layer; ``per_head``: other projections with one block of rows per head
    (DeBERTa's relative-position ones); ``head_counts``: attributes of ``core`` that hold its number of query
    heads."""

    layers: str
    core: str
    query: str
    key: str
    value: str
    output: str
    per_head: tuple[str, ...] = ()
    head_counts: tuple[str, ...] = ()

    @property
    def output_in_core(self) -> bool:
        return self.output.startswith(self.core + ".")


def get_module(root: nn.Module, path: str) -> nn.Module:
    for part in path.split("."):
        root = getattr(root, part)
    return root


def has_module(root: nn.Module, path: str) -> bool:
    try:
        get_module(root, path)
    except AttributeError:
        return False
    return True


def set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(get_module(root, parent) if parent else root, name, module)


class RepeatedHeads(nn.Linear):
    """A key or value projection that computes ``groups`` heads and repeats each for its query heads:
    output head ``j`` is computed head ``head_index[j]``. State-dict keys are those of ``nn.Linear``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, head_dim: int,
                 head_index: Sequence[int]):
        super().__init__(in_features, out_features, bias=bias)
        self.head_dim = head_dim
        # plain integers, not a buffer: a model built on the meta device (transformers' from_pretrained) would
        # leave a non-persistent buffer unset
        self.head_index = tuple(int(h) for h in head_index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        lead = y.shape[:-1]
        index = torch.tensor(self.head_index, dtype=torch.long, device=y.device)
        return y.view(*lead, -1, self.head_dim).index_select(-2, index).reshape(*lead, -1)


class EmptyProjection(nn.Linear):
    """The output projection of a layer with no head: ``in_features == 0``, so its output is its bias
    (zeros without one), computed without a zero-width matrix product (which ONNX exporters reject)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(*x.shape[:-1], self.out_features)
        return out if self.bias is None else out + self.bias


class EmptyAttention(nn.Module):
    """A layer's attention with no head left: the heads' concatenation is empty. When the family's output
    projection lives inside the attention module it is kept here, under its own name (same state-dict key)."""

    def __init__(self, output_name: str | None = None, output: nn.Module | None = None):
        super().__init__()
        self.output_name = output_name
        if output_name is not None:
            setattr(self, output_name, output)

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, None]:
        empty = hidden_states.new_zeros(*hidden_states.shape[:-1], 0)
        if self.output_name is not None:
            return getattr(self, self.output_name)(empty), None
        return empty, None


def _rows(positions: Sequence[int], head_dim: int, device: torch.device) -> torch.Tensor:
    return torch.tensor([p * head_dim + i for p in positions for i in range(head_dim)], dtype=torch.long, device=device)


def _sliced(linear: nn.Linear, index: torch.Tensor, dim: int, make: Callable[..., nn.Linear] = nn.Linear) -> nn.Linear:
    """A copy of ``linear`` (built by ``make``, an ``nn.Linear`` class) keeping rows (``dim=0``) or input
    columns (``dim=1``) ``index``."""
    weight = linear.weight.index_select(dim, index)
    bias = None if linear.bias is None else linear.bias if dim == 1 else linear.bias.index_select(0, index)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
        new = make(weight.shape[1], weight.shape[0], bias=bias is not None)
    new = new.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new.train(linear.training)


def cut_copy(layer: nn.Module, family: Layout, *, head_dim: int, group_size: int, current: Sequence[int],
             keep: Sequence[int]) -> nn.Module:
    """A copy of ``layer`` cut to the query heads ``keep`` that shares every weight the cut leaves alone (norms,
    feed-forward): only the modules on the paths to the attention's pieces are copied, shallowly, so that
    ``prune_layer`` replaces their children in the copy, never in ``layer``. Cheap enough to keep one per
    head set (per-input routing runs each input's heads through one)."""
    clone, copied = _shallow(layer), {""}
    for path in (family.core, family.query, family.key, family.value, family.output, *family.per_head):
        if not has_module(layer, path):
            continue  # a per-head projection this layer does not have
        parts = path.split(".")
        for depth in range(1, len(parts) + (path == family.core)):  # the leaf projections are replaced, not copied
            prefix = ".".join(parts[:depth])
            if prefix not in copied:
                set_module(clone, prefix, _shallow(get_module(clone, prefix)))
                copied.add(prefix)
    prune_layer(clone, family, head_dim=head_dim, group_size=group_size, current=current, keep=keep)
    return clone


def _shallow(module: nn.Module) -> nn.Module:
    """A new module object with ``module``'s attributes and its own copies of their dicts (children, parameters,
    buffers, hooks: what setting an attribute or registering a hook changes); a ``forward`` shadowed on
    ``module`` for one pass is not copied."""
    clone = object.__new__(type(module))
    clone.__dict__.update({k: type(v)(v) if isinstance(v, dict) else v for k, v in module.__dict__.items()})
    clone.__dict__.pop("forward", None)
    return clone


def prune_layer(layer: nn.Module, family: Layout, *, head_dim: int, group_size: int,
                current: Sequence[int], keep: Sequence[int]) -> None:
    """Cut ``layer`` from the query heads ``current`` (dense indices, ascending) to ``keep`` (a subset)."""
    current, keep = list(current), list(keep)
    if keep == current:
        return
    core = get_module(layer, family.core)
    output = get_module(layer, family.output)
    device = output.weight.device
    positions = [current.index(q) for q in keep]
    q_index = _rows(positions, head_dim, device)
    if not keep:
        inner = family.output[len(family.core) + 1:] if family.output_in_core else None
        empty_output = _sliced(output, q_index, 1, EmptyProjection)
        if inner is None:
            set_module(layer, family.output, empty_output)
        set_module(layer, family.core, EmptyAttention(inner, empty_output if inner else None).train(core.training))
        return
    set_module(layer, family.query, _sliced(get_module(layer, family.query), q_index, 0))
    for path in family.per_head:
        if has_module(layer, path):
            set_module(layer, path, _sliced(get_module(layer, path), q_index, 0))
    set_module(layer, family.output, _sliced(output, q_index, 1))
    groups_now = sorted({q // group_size for q in current})
    groups = sorted({q // group_size for q in keep})
    kv_index = _rows([groups_now.index(g) for g in groups], head_dim, device)
    per_group = {len([q for q in keep if q // group_size == g]) for g in groups}
    uniform = len(per_group) == 1
    for path in (family.key, family.value):
        linear = get_module(layer, path)
        if uniform or group_size == 1:
            set_module(layer, path, _sliced(linear, kv_index, 0))
        else:
            repeated = partial(RepeatedHeads, head_dim=head_dim, head_index=[groups.index(q // group_size) for q in keep])
            set_module(layer, path, _sliced(linear, kv_index, 0, repeated))
    for name in family.head_counts:
        setattr(core, name, len(keep))
    if hasattr(core, "all_head_size"):
        core.all_head_size = len(keep) * head_dim
    if hasattr(core, "num_key_value_groups"):
        core.num_key_value_groups = per_group.pop() if uniform else 1
