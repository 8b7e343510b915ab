"""TransformersClassifier: the user's Hugging Face ``*ForSequenceClassification`` model as a HeadedModel.

The model runs as transformers runs it (its own embeddings, attention kernels, pooling and fine-tuned
head); headsearch adds forward hooks, never a second implementation, and only for the forward passes that
need them (a plain forward, the one latency is measured on, runs the bare model):

- gates: a pre-hook on each layer's output projection multiplies every head's slice of its input (the
  heads' concatenated outputs) by the head's gate; a ``GateFn`` is evaluated by a pre-hook on the layer,
  from the layer's input states;
- recording: the same pre-hook keeps each head's output; attention maps come from a hook on the
  attention module while the model runs eager attention (switched on for the block, since fused kernels
  return no maps);
- prefix reuse: ``prefix`` keeps each layer's output (a forward hook) and ends the pass once it has the
  layers asked for; ``resume`` runs the whole model with the layers before ``start`` replaying that output
  instead of computing (their ``forward`` shadowed for the one pass), so every family's own layer loop,
  masks, rotary tables and pooling run as they are;
- pruning: ``headsearch.models.hf.surgery`` cuts the real modules, so a pruned model is still the
  user's transformers class and runs the same fast kernels.

Heads are searched as query heads (``unit="query"``) or, for grouped-query attention, as whole key/value
groups (``unit="kv_group"``: a unit is a group with its query heads).
"""

from __future__ import annotations

import copy
import inspect
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch
from torch import nn

from headsearch.errors import HeadConfigError, ModelError
from headsearch.heads import HeadConfig
from headsearch.models.headed import GateFn, HeadedModel, HeadRecord
from headsearch.models.hf.families import Family
from headsearch.models.hf.surgery import EmptyAttention, cut_copy, get_module, has_module, prune_layer
from headsearch.models.shape import ModelShape

UNITS = ("query", "kv_group")


class TransformersClassifier(HeadedModel):
    """``hf``: a ``PreTrainedModel`` of ``family``, dense or already pruned to ``kept`` (query heads per layer,
    dense indices). ``pair_separator``: the tokenizer's separator id; for models with token types (BERT,
    ELECTRA) a text pair's second segment is marked from it, as the tokenizer marks it."""

    can_skip_attention = True

    def __init__(self, hf: nn.Module, family: Family, *, unit: str = "query", pair_separator: int | None = None,
                 kept: tuple[tuple[int, ...], ...] | None = None, shape: ModelShape | None = None):
        super().__init__()
        if unit not in UNITS:
            raise ModelError(f"The 'head_unit' setting must be one of {list(UNITS)}. Got {unit!r}.")
        self.hf, self.family, self.unit, self.pair_separator = hf, family, unit, pair_separator
        config = hf.config
        self._query_heads = int(config.num_attention_heads)
        kv = int(getattr(config, "num_key_value_heads", None) or self._query_heads)
        if self._query_heads % kv:
            raise ModelError(f"{config.model_type}: {self._query_heads} query heads do not split into {kv} key/value groups.")
        self._group = self._query_heads // kv
        self._per_unit = self._group if unit == "kv_group" else 1
        self._kept = kept or tuple(tuple(range(self._query_heads)) for _ in self._layers())
        self._shape = shape or self._measure_shape()
        self._token_types = (getattr(config, "type_vocab_size", 0) or 0) > 1 and pair_separator is not None \
            and "token_type_ids" in inspect.signature(hf.forward).parameters
        device = next(hf.parameters()).device
        for i, units in enumerate(self._kept):
            self.register_buffer(f"_unit_of_{i}", torch.tensor([q // self._per_unit for q in units], dtype=torch.long,
                                                               device=device), persistent=False)
        self._gates: torch.Tensor | None = None
        self._gate_fn: GateFn | None = None
        self._layer_gates: dict[int, torch.Tensor] = {}
        self._mask: torch.Tensor | None = None
        self._record: HeadRecord | None = None

    # -- structure --------------------------------------------------------------------------------------
    def _layers(self) -> nn.ModuleList:
        return get_module(self.hf.base_model, self.family.layers)

    def _measure_shape(self) -> ModelShape:
        """The cost model's shape, read from the dense model's modules."""
        config, layer = self.hf.config, self._layers()[0]
        query = get_module(layer, self.family.query)
        head_dim = query.out_features // self._query_heads
        paths = (self.family.query, self.family.key, self.family.value, self.family.output, *self.family.per_head)
        attention = {id(get_module(layer, p)) for p in paths if has_module(layer, p)}
        others = [m for m in layer.modules() if isinstance(m, nn.Linear) and id(m) not in attention]
        base = self.hf.base_model
        in_base = {id(m) for m in base.modules()}
        pooler = getattr(base, "pooler", None)
        pooled = {id(m) for m in pooler.modules()} if isinstance(pooler, nn.Module) else set()
        head = [m for m in self.hf.modules() if isinstance(m, nn.Linear) and (id(m) not in in_base or id(m) in pooled)]
        layer_ids = {id(m) for m in self._layers().modules()}
        embedding = [m for m in base.modules() if isinstance(m, nn.Linear) and id(m) not in layer_ids and id(m) not in pooled]
        relative = self._relative(layer)
        return ModelShape(
            num_layers=len(self._layers()), num_heads=self._query_heads // self._per_unit, head_dim=head_dim,
            hidden_size=query.in_features, intermediate_size=max((m.out_features for m in others), default=0),
            layer_linear_flops=sum(2 * m.in_features * m.out_features for m in others),
            classifier_flops=sum(2 * m.in_features * m.out_features for m in head),
            embedding_flops=sum(2 * m.in_features * m.out_features for m in embedding),
            vocab_size=int(config.vocab_size), max_positions=int(getattr(config, "max_position_embeddings", 512)),
            num_classes=int(config.num_labels), query_per_unit=self._per_unit, kv_group_size=self._group,
            classifier_per_token=self.family.decoder, relative_positions=relative[0], relative_terms=relative[1],
        )

    def _relative(self, layer: nn.Module) -> tuple[int, int]:
        """DeBERTa's disentangled attention: (relative embedding rows projected, number of c2p/p2c terms)."""
        core = get_module(layer, self.family.core)
        if not getattr(core, "relative_attention", False):
            return 0, 0
        terms = sum(t in (core.pos_att_type or []) for t in ("c2p", "p2c"))
        return 2 * int(core.pos_ebd_size), terms

    # -- the HeadedModel contract -------------------------------------------------------------------------
    @property
    def shape(self) -> ModelShape:
        return self._shape

    @property
    def head_config(self) -> HeadConfig:
        return HeadConfig(tuple(tuple(sorted({q // self._per_unit for q in kept})) for kept in self._kept),
                          self.num_heads)

    @property
    def kept_query_heads(self) -> tuple[tuple[int, ...], ...]:
        """Per layer, the query heads present in the weights (dense indices), whatever the search unit."""
        return self._kept

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                gates: torch.Tensor | GateFn | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        self._gate_fn = gates if callable(gates) else None
        self._gates = None if self._gate_fn is not None else self.check_gates(gates, input_ids.shape[0])
        self._mask = attention_mask
        kwargs: dict[str, Any] = {}
        if self._token_types:
            kwargs["token_type_ids"] = self.token_types(input_ids, attention_mask)
        if self.family.decoder:
            kwargs["use_cache"] = False
        if self._record is not None and self._record.want_attention:
            kwargs["output_attentions"] = True
        try:
            with self._hooks():
                return self.hf(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits
        finally:
            self._gates, self._gate_fn, self._mask = None, None, None
            self._layer_gates.clear()

    def token_types(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Segment ids as BERT's tokenizer writes them for ``[CLS] a [SEP] b [SEP]``: 0 up to and including
        the first separator, 1 after it (padding 0)."""
        sep = (input_ids == self.pair_separator).long()
        return ((sep.cumsum(-1) - sep) > 0).long() * attention_mask.long()

    def prefix(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, gates: torch.Tensor,
               layers: int) -> list[Any]:
        outputs: list[Any] = []
        if layers == 0:
            return outputs

        def keep(module: nn.Module, args: tuple, output: Any) -> None:
            outputs.append(output)
            if len(outputs) == layers:
                raise _PrefixDone  # the layers after it are not needed

        handles = [layer.register_forward_hook(keep) for layer in self._layers()[:layers]]
        try:
            self(input_ids, attention_mask, gates)
        except _PrefixDone:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return outputs

    def resume(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, gates: torch.Tensor, entering: Any,
               start: int, *, copies: int = 1) -> torch.Tensor:
        output = _repeated(entering, copies)
        # each skipped layer returns what enters layer `start`; only the last one's output is used
        return self.run_layers(input_ids, attention_mask, {i: partial(_replay, output) for i in range(start)}, gates)

    def run_layers(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, replace: dict[int, Callable[..., Any]],
                   gates: torch.Tensor | GateFn | None = None) -> torch.Tensor:
        """Logits of a forward pass in which layer ``i`` runs ``replace[i](layer, *args, **kwargs)`` instead of
        itself (``args``/``kwargs``: what the family's own layer loop passes it: states, masks, rotary tables).
        The layers' ``forward`` is shadowed by an instance attribute for the one pass, so everything around them
        (embeddings, masks, pooling, head) runs as the family runs it. Prefix reuse and per-input routing
        (``headsearch.models.routing``) run through here."""
        layers = self._layers()
        for i, fn in replace.items():
            layers[i].forward = partial(fn, layers[i])
        try:
            return self(input_ids, attention_mask, gates)
        finally:
            for i in replace:
                del layers[i].forward

    def layer_cut(self, index: int, units: tuple[int, ...]) -> nn.Module:
        """Layer ``index`` (of this dense model) with its attention cut to ``units`` (search units), sharing its
        other weights: what the layer of a model pruned to keep ``units`` there computes."""
        keep = tuple(q for u in units for q in range(u * self._per_unit, (u + 1) * self._per_unit))
        return cut_copy(self._layers()[index], self.family, head_dim=self.head_dim, group_size=self._group,
                        current=self._kept[index], keep=keep)

    def layer_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[tuple[tuple, dict]]:
        """What each layer is called with (``args``, ``kwargs``) in a dense forward pass of these rows: with
        ``layer_cut``, a layer run on its own as the model runs it (the latency table times layers so)."""
        calls: list[tuple[tuple, dict]] = []
        handles = [layer.register_forward_pre_hook(lambda m, a, k: calls.append((a, dict(k))), with_kwargs=True)
                   for layer in self._layers()]
        try:
            self(input_ids, attention_mask)
        finally:
            for handle in handles:
                handle.remove()
        return calls

    def attention_weights(self) -> list[torch.Tensor]:
        """The weights ``layer_cut`` copies, every layer's: their ``_version`` tells when copies are stale."""
        paths = (self.family.query, self.family.key, self.family.value, self.family.output, *self.family.per_head)
        return [get_module(layer, p).weight for layer in self._layers() for p in paths if has_module(layer, p)]

    @contextmanager
    def record_heads(self, *, attention: bool = False) -> Iterator[HeadRecord]:
        record = HeadRecord(want_attention=attention)
        previous = self.hf.config._attn_implementation
        if attention and previous != "eager":
            self.hf.set_attn_implementation("eager")  # fused kernels return no attention maps
        self._record = record
        try:
            yield record
        finally:
            self._record = None
            if attention and previous != "eager":
                self.hf.set_attn_implementation(previous)

    def prune(self, config: HeadConfig) -> TransformersClassifier:
        config.check_fits(self.num_layers, self.num_heads, allow_empty_layers=True)
        keep = tuple(tuple(q for u in units for q in range(u * self._per_unit, (u + 1) * self._per_unit))
                     for units in config.kept)
        for layer, (now, wanted) in enumerate(zip(self._kept, keep, strict=True)):
            missing = sorted(set(wanted) - set(now))
            if missing:
                raise HeadConfigError(f"Layer {layer}: query heads {missing} were already pruned; cannot keep them.")
        hf = copy.deepcopy(self.hf)
        for layer, now, wanted in zip(get_module(hf.base_model, self.family.layers), self._kept, keep, strict=True):
            prune_layer(layer, self.family, head_dim=self.head_dim, group_size=self._group, current=now, keep=wanted)
        return TransformersClassifier(hf, self.family, unit=self.unit, pair_separator=self.pair_separator,
                                      kept=keep, shape=self._shape)

    def layout(self, config: HeadConfig) -> tuple:
        """Grouped-query attention searched by query head: per layer, the query heads kept in each surviving
        key/value group, sorted. Groups that keep equal numbers run the stock layout, unequal ones repeat
        key/value heads (``RepeatedHeads``); either way the shapes depend on these numbers alone."""
        if self._group == 1 or self.unit == "kv_group":
            return super().layout(config)
        return tuple(tuple(sorted(Counter(q // self._group for q in units).values())) for units in config.kept)

    def reinitialized(self, seed: int) -> TransformersClassifier:
        torch.manual_seed(seed)
        hf = type(self.hf)(copy.deepcopy(self.hf.config))
        return TransformersClassifier(hf.to(next(self.hf.parameters()).device), self.family, unit=self.unit,
                                      pair_separator=self.pair_separator, shape=self._shape)

    def is_classifier_parameter(self, name: str) -> bool:
        return not name.startswith(f"hf.{self.hf.base_model_prefix}.")

    # -- hooks, registered for one forward pass -------------------------------------------------------------
    @contextmanager
    def _hooks(self) -> Iterator[None]:
        """The hooks this forward pass needs (none for a plain one), removed when it ends."""
        gating, recording = self._gates is not None or self._gate_fn is not None, self._record is not None
        handles = []
        if gating or recording:
            for i, layer in enumerate(self._layers()):
                if self._gate_fn is not None:
                    handles.append(layer.register_forward_pre_hook(partial(self._layer_input, i), with_kwargs=True))
                handles.append(get_module(layer, self.family.output).register_forward_pre_hook(partial(self._heads_output, i)))
                if recording:
                    handles.append(get_module(layer, self.family.core).register_forward_hook(partial(self._attention_maps, i)))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _layer_input(self, i: int, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self._gate_fn is not None:
            states = args[0] if args else kwargs["hidden_states"]
            self._layer_gates[i] = self._gate_fn(i, states, self._mask)

    def _heads_output(self, i: int, module: nn.Module, args: tuple) -> tuple | None:
        """Pre-hook of layer ``i``'s output projection: gate (and record) each head's slice of its input."""
        gates = self._gates[:, i] if self._gates is not None else self._layer_gates.get(i)
        if not self._kept[i]:
            return None
        x = args[0]
        n, d = len(self._kept[i]), self.head_dim
        heads = x.view(*x.shape[:-1], n, d)
        if gates is not None:
            per_head = gates.to(x.dtype).index_select(1, getattr(self, f"_unit_of_{i}"))  # [batch or 1, n]
            heads = heads * per_head[:, None, :, None]
        if self._record is not None:
            self._record.context.append(heads.transpose(1, 2))
        return (heads.reshape(x.shape), *args[1:])

    def _attention_maps(self, i: int, module: nn.Module, args: tuple, output: Any) -> None:
        if self._record is None:
            return
        units = self.head_config.kept[i]
        self._record.heads.append(units)
        if not self._record.want_attention:
            return
        if isinstance(module, EmptyAttention):
            out = output[0]  # [batch, seq, ...]
            maps = out.new_zeros(out.shape[0], 0, out.shape[1], out.shape[1])
        else:
            maps = output[1]
            if maps is None:
                raise ModelError(f"{type(module).__name__} returned no attention maps; record_heads(attention=True) "
                                 "needs eager attention.")
            if self._per_unit > 1:  # a unit's map: the mean of its query heads' maps
                maps = maps.view(maps.shape[0], len(units), self._per_unit, *maps.shape[-2:]).mean(2)
        self._record.attention.append(maps)


class _PrefixDone(Exception):
    """Raised by ``prefix``'s hook to end a forward pass once the layers asked for have run."""


def _replay(output: Any, layer: nn.Module, *args: Any, **kwargs: Any) -> Any:
    return output


def _repeated(output: Any, copies: int) -> Any:
    """A layer's output (a tensor, or a tuple holding tensors) for ``copies`` copies of its rows, stacked."""
    if copies == 1 or output is None:
        return output
    if isinstance(output, torch.Tensor):
        return output.repeat(copies, *[1] * (output.dim() - 1))
    return type(output)(_repeated(x, copies) for x in output)
