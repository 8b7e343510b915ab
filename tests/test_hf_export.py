"""A user's Hugging Face classifier exported pruned: reloads as the same transformers class with the pruned shapes,
equal to the gated model, and as ONNX; a layer with no head still runs."""

from __future__ import annotations

import inspect
import json

import pytest
import torch
from floats import assert_close
from hf_models import FAMILIES, save_tiny_classifier
from transformers import AutoModelForSequenceClassification

from headsearch.export import export, load, load_transformers
from headsearch.heads import HeadConfig
from headsearch.models.hf.user_model import open_classifier

TEXTS = ["the movie was good", "not a good film but fun", "boring", "this story is very very great and the actor is fun"]


# an ONNX export takes seconds: tests/test_export.py checks the built-in Llama's and BERT's in the default run, every
# family's runs here with -m slow
ONNX_BY_DEFAULT = ()
CASES = [*((f, True) for f in ONNX_BY_DEFAULT), *((f, False) for f in FAMILIES if f not in ONNX_BY_DEFAULT),
         *(pytest.param(f, True, marks=pytest.mark.slow) for f in FAMILIES if f not in ONNX_BY_DEFAULT)]


@pytest.mark.parametrize(("family", "onnx"), CASES)
def test_export_reloads_as_the_users_class_and_as_onnx(family, onnx, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    clf = open_classifier(save_tiny_classifier(family, tmp_path / family), max_length=16)
    H = clf.model.num_heads
    config = HeadConfig(((), tuple(range(1, H))), H)  # layer 0 keeps no head at all
    gated = clf.logits(TEXTS, gates=torch.tensor(config.mask()))
    out = export(clf, tmp_path / "export", head_config=config, onnx=onnx)
    assert json.loads((out / "head_config.json").read_text())["kept"] == [[], list(range(1, H))]
    assert torch.allclose(load(out).logits(TEXTS), gated, atol=1e-4)
    model, tokenizer = load_transformers(out)
    assert type(model) is type(clf.model.hf)  # e.g. BertForSequenceClassification, pruned shapes
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())  # no headsearch hooks left
    enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
    accepted = inspect.signature(model.forward).parameters  # the test tokenizers return token types to every family
    with torch.no_grad():
        own = model(**{k: v for k, v in enc.items() if k in accepted}).logits
    assert torch.allclose(own, gated, atol=1e-4)
    plain = AutoModelForSequenceClassification.from_pretrained(str(out), trust_remote_code=True).eval()
    assert isinstance(plain, type(clf.model.hf)) and type(plain).__name__ == type(clf.model.hf).__name__
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in model.parameters())
    with torch.no_grad():  # the same modules and weights as load_transformers': equal up to float rounding
        assert_close(plain(**{k: v for k, v in enc.items() if k in accepted}).logits, own)
    if onnx:
        ids, mask = clf.encode(TEXTS)
        logits = ort.InferenceSession(str(out / "model.onnx")).run(None, {"input_ids": ids.numpy(),
                                                                          "attention_mask": mask.numpy()})[0]
        assert torch.allclose(torch.from_numpy(logits), gated, atol=1e-4)
    card = (out / "model_card.md").read_text()
    assert type(clf.model.hf).__name__ in card and "| 0 | 0 | [] |" in card


def test_a_builtin_export_loads_with_transformers_alone(tiny_builtin, tmp_path):
    """The built-in model is a transformers model: its pruned export is a ``LlamaForSequenceClassification`` with
    its word-level tokenizer, called as transformers models are."""
    import transformers

    pruned = tiny_builtin.prune(HeadConfig(((0, 2), (), (1,)), 4))
    out = export(pruned, tmp_path / "builtin", onnx=False)
    model, _ = load_transformers(out)
    assert type(model) is transformers.LlamaForSequenceClassification
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    texts = ["the film was not good", "great"]
    with torch.inference_mode():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    assert_close(logits, pruned.logits(texts))


@pytest.mark.slow
def test_minilm_as_a_transformers_classifier(tmp_path):
    """The real pretrained MiniLM-L6 (6 x 12 heads) as BertForSequenceClassification: gated == pruned == export ==
    ONNX, with a layer emptied and uneven counts elsewhere."""
    ort = pytest.importorskip("onnxruntime")
    transformers = pytest.importorskip("transformers")
    from headsearch.data.tokenizers import TransformersTokenizer
    from headsearch.models import minilm_path

    torch.manual_seed(0)
    folder = tmp_path / "minilm-classifier"
    hf = transformers.BertForSequenceClassification.from_pretrained(str(minilm_path()), num_labels=2, local_files_only=True)
    hf.save_pretrained(folder)
    TransformersTokenizer.load(minilm_path()).hf.save_pretrained(folder)
    clf = open_classifier(folder, max_length=32)
    config = HeadConfig(((), (0, 5, 11), tuple(range(12)), (3,), (1, 2, 3, 4, 5, 6), (7, 8)), 12)
    texts = ["a gripping, beautifully shot film", "dull and far too long", "it is not bad at all"]
    gated = clf.logits(texts, gates=torch.tensor(config.mask()))
    assert not torch.allclose(gated, clf.logits(texts), atol=1e-3)
    assert torch.allclose(clf.prune(config).logits(texts), gated, atol=1e-4)
    out = export(clf, tmp_path / "export", head_config=config)
    assert torch.allclose(load(out).logits(texts), gated, atol=1e-4)
    ids, mask = clf.encode(texts)
    onnx = ort.InferenceSession(str(out / "model.onnx")).run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    assert torch.allclose(torch.from_numpy(onnx[0]), gated, atol=1e-4)
