"""Deployable export of a pruned model, and its loaders.

An export folder holds ``head_config.json`` (the heads kept per layer), the pruned weights
(``model.safetensors`` with ``headsearch_model.json``; for a Hugging Face model also its dense
``config.json``), the tokenizer, ``model_card.md`` with the objectives it was chosen on, ``model.onnx``
(inputs ``input_ids``, ``attention_mask``; output ``logits``) and ``manifest.json`` with each file's SHA-256
so that the loaders detect a damaged folder. ``load`` returns a TextClassifier (``predict``);
``load_transformers`` returns the user's own transformers class with the pruned shapes, and its tokenizer.
Without headsearch, ``AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)``
loads it too, through the generated modelling file its config names (``headsearch.models.hf.standalone``).
The folder is written beside its target and renamed into place, so a failed export leaves nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from headsearch._fs import atomic_folder
from headsearch.errors import ExportError, ModelError
from headsearch.heads import HeadConfig, heads_for_budget
from headsearch.models.hf.standalone import MODELING_FILE, SURGERY_FILE
from headsearch.models.onnx import write_onnx
from headsearch.models.text_classifier import TextClassifier

HEAD_CONFIG_FILE = "head_config.json"
HEAD_ORDER_FILE = "head_order.json"  # multi-budget exports: heads in keeping order
CARD_FILE = "model_card.md"
ONNX_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export(clf: TextClassifier, out: str | Path, *, head_config: HeadConfig | None = None,
           objectives: Mapping[str, Any] | None = None,
           evaluate: Callable[[TextClassifier], Mapping[str, Any]] | None = None,
           onnx: bool = True, overwrite: bool = False, head_order: list[tuple[int, int]] | None = None) -> Path:
    """Prune ``clf`` to ``head_config`` (if given) and write a self-contained folder at ``out``.

    ``evaluate``, when given, is called on the model *reloaded from the written weights* and its
    results join ``objectives`` in the model card: figures are those of the artefact itself.
    ``head_order`` (a budget-conditioned checkpoint's keeping order, ``headsearch.models.gates``) makes a
    multi-budget export: the weights keep every head of ``clf`` and ``load(path, budget=b)`` slices
    the first ``max(layers, round(b * N))`` heads of the order at load time.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; pass overwrite=True (CLI: --overwrite) or choose another folder.")
    routed = clf.router is not None
    if routed and head_config is not None and head_config != clf.model.head_config:
        raise ExportError("A routed model (per-input budgets) keeps every head; export it without a head configuration.")
    pruned = clf.prune(head_config) if head_config is not None and not routed else clf
    pruned.model.eval()
    onnx = onnx and not routed  # the runtime's per-input choice is data-dependent control flow
    config = pruned.model.head_config
    with atomic_folder(out) as tmp:
        pruned.save(tmp)
        config.save(tmp / HEAD_CONFIG_FILE)
        if head_order is not None:
            order = [[int(i), int(h)] for i, h in head_order]
            if sorted(map(tuple, order)) != sorted((i, h) for i, kept in enumerate(config.kept) for h in kept):
                raise ExportError("head_order must list every head the exported model keeps, once.")
            (tmp / HEAD_ORDER_FILE).write_text(json.dumps(order) + "\n")
        if onnx:
            _write_onnx(pruned, tmp / ONNX_FILE)
        figures = dict(objectives or {})
        if evaluate is not None:
            figures.update(evaluate(TextClassifier.load(tmp)))
        (tmp / CARD_FILE).write_text(_model_card(pruned, config, figures, onnx, multi_budget=head_order is not None,
                                                 routed=routed))
        files = sorted(p.name for p in tmp.iterdir() if p.is_file())
        (tmp / MANIFEST_FILE).write_text(json.dumps({name: _sha256(tmp / name) for name in files}, indent=2) + "\n")
    return out


def load(path: str | Path, *, budget: float | None = None) -> TextClassifier:
    """Rebuild the pruned model from an export folder alone, after checking every file's checksum.

    ``budget``: for a multi-budget export (one with ``head_order.json``), the fraction of heads to keep;
    the model is sliced to the first ``max(layers, round(budget * N))`` heads of the recorded order."""
    path = Path(path)
    if not path.is_dir():
        raise ExportError(f"Export folder not found: {path}")
    manifest_file = path / MANIFEST_FILE
    if not manifest_file.is_file():
        raise ExportError(f"{path}: no {MANIFEST_FILE}; not a headsearch export (or an incomplete one).")
    try:
        manifest = json.loads(manifest_file.read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f"{manifest_file}: corrupted ({exc}).") from exc
    for name, digest in manifest.items():
        file = path / name
        if not file.is_file():
            raise ExportError(f"{path}: {name} is missing from the export.")
        if _sha256(file) != digest:
            raise ExportError(f"{file}: checksum mismatch; the file was changed or corrupted after export.")
    try:
        clf = TextClassifier.load(path)
        config = HeadConfig.load(path / HEAD_CONFIG_FILE)
    except (ModelError, ValueError) as exc:
        raise ExportError(f"{path}: {exc}") from exc
    if config != clf.model.head_config:
        raise ExportError(f"{path}: {HEAD_CONFIG_FILE} does not match the heads present in the weights.")
    if budget is None:
        return clf
    if clf.router is not None:
        raise ExportError(f"{path}: a routed export chooses each input's budget itself; load it without budget=.")
    if not (path / HEAD_ORDER_FILE).is_file():
        raise ExportError(f"{path}: not a multi-budget export (no {HEAD_ORDER_FILE}); load it without budget=.")
    order = [tuple(pair) for pair in json.loads((path / HEAD_ORDER_FILE).read_text())]
    shape = clf.model.shape
    try:
        count = heads_for_budget(budget, shape.num_layers, shape.num_heads)
    except ValueError as exc:
        raise ExportError(f"{exc} Pick budget in (0, 1].") from exc
    return clf.prune(HeadConfig.first(order, count, shape.num_layers, shape.num_heads))


def load_transformers(path: str | Path) -> tuple[Any, Any]:
    """An export of a Hugging Face model as ``(model, tokenizer)``: the user's own transformers class (e.g.
    ``BertForSequenceClassification``) with the pruned shapes and no headsearch hooks, called like the original:
    ``model(**tokenizer(texts, return_tensors="pt")).logits``. Checksums are checked as ``load`` does."""
    clf = load(path)
    return clf.model.hf, clf.tokenizer.hf


def _write_onnx(clf: TextClassifier, file: Path) -> None:
    ids, mask = clf.encode(["an example sentence for tracing", "another"])
    try:
        write_onnx(clf.model, ids, mask, file, max_positions=clf.model.shape.max_positions)
    except ModelError as exc:
        raise ExportError(f"{exc} Export with onnx=False (CLI: --no-onnx).") from exc


def _realised(objectives: Mapping[str, Any]) -> str:
    """The measured speedup against the FLOPs ideal (``1 / flops_ratio``), in the runtime it was timed in."""
    speedup, ratio = objectives.get("speedup"), objectives.get("flops_ratio")
    if not isinstance(speedup, float) or not isinstance(ratio, float) or ratio <= 0:
        return ""
    try:
        profile = json.loads(objectives.get("profile") or "{}")
    except (TypeError, ValueError):
        profile = {}
    where = (f" in {profile.get('runtime', 'eager')} ({profile.get('runtime_version', '')}; batch {profile.get('batch_size')}, "
             f"{profile.get('seq_len')} tokens, {profile.get('threads')} thread(s))" if profile else "")
    return (f"\nMeasured speedup {speedup:.3f}x{where} against the FLOPs ideal {1 / ratio:.3f}x (1 / FLOPs ratio): "
            f"**realised / ideal {speedup * ratio:.3f}**.\n")


def _model_card(clf: TextClassifier, config: HeadConfig, objectives: Mapping[str, Any], onnx: bool, *,
                multi_budget: bool = False, routed: bool = False) -> str:
    shape = clf.model.shape
    if routed:
        r = clf.router.spec
        heads = (f"Per-input head budgets (BudgetFormer): the weights keep all {config.total_heads} heads and "
                 f"`router.safetensors` a router ({'at every layer' if r.per_layer else 'once per input, on the embeddings'}: "
                 f"a budget s in [{r.s_min:g}, {r.s_max:g}]\nand each layer's head ranking); for each input and layer the "
                 f"runtime computes only the top {r.rounding}(s x {shape.num_heads}) heads.\nThe objectives below are "
                 "means over the evaluation split (FLOPs) and timings on its rows.")
    else:
        heads = (f"Heads kept: {config.total_kept} of {config.total_heads} ({config.fraction_kept:.1%}); the removed heads'\n"
                 "weights are cut out of Q/K/V and the output projection, so this model is structurally smaller.")
    rows = "\n".join(f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in objectives.items())
    per_layer = "\n".join(f"| {i} | {len(h)} | {list(h)} |" for i, h in enumerate(config.kept))
    cls = type(clf.model.hf).__name__
    kind = f"transformers `{cls}`"
    loading = "" if routed else f"""With transformers alone (torch and transformers installed; no headsearch):

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained("path/to/this/folder", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
model(**tokenizer(["some text"], return_tensors="pt")).logits
```
`trust_remote_code` runs `{MODELING_FILE}` from this folder: a `{cls}` subclass of transformers' own that cuts each
layer to the heads `config.json`'s `per_layer_config` lists, with `{SURGERY_FILE}` (headsearch's surgery, torch alone).
Read both before trusting them.

Through headsearch:
"""
    return f"""# headsearch export

Base model: `{clf.source}`, {kind} ({shape.num_layers} layers x {shape.num_heads} heads, hidden {shape.hidden_size}).
{heads}
Labels: {", ".join(clf.label_names)}. Max length: {clf.max_length} tokens.

## Objectives

| objective | value |
|---|---|
{rows or "| (none recorded) | |"}
{_realised(objectives)}
## Heads kept per layer

| layer | count | heads |
|---|---|---|
{per_layer}

## Loading

{loading}```python
from headsearch.export import load, load_transformers
clf = load("path/to/this/folder"{', budget=0.5' if multi_budget else ''})
clf.predict(["some text"])
model, tokenizer = load_transformers("path/to/this/folder")  # transformers' own {cls}, pruned shapes
```
{"Multi-budget export: the weights hold every head and `head_order.json` their keeping order; "
 "`load(path, budget=b)` keeps the first max(layers, round(b x heads)) of them (b in (0, 1]). "
 "The objectives above are those of the whole checkpoint (b = 1), what transformers alone loads." if multi_budget else ""}
{"ONNX: `model.onnx` takes `input_ids` and `attention_mask` (int64, [batch, seq]) and returns `logits`." if onnx else ""}
{"No ONNX file: the per-input choice of heads is data-dependent control flow; run it with `load`." if routed else ""}
"""
