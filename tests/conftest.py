"""Shared fixtures: tiny CPU models with fixed seeds, a tiny BERT folder, the real MiniLM, shared data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from headsearch.data import negation_task
from headsearch.models import BuiltinConfig, build_builtin, open_base

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _own_cache_dir(tmp_path_factory):
    """Latency tables kept across studies go to a folder of this session's, not the user's cache."""
    from headsearch.cost.table_cache import ENV

    mp = pytest.MonkeyPatch()
    mp.setenv(ENV, str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture()
def timed_configs(monkeypatch) -> list:
    """The head configurations the evaluator times (``measure_speedup`` counted, still run), in order."""
    from headsearch import objectives

    timed, real = [], objectives.measure_speedup

    def counting(dense, pruned, profile, **kwargs):
        timed.append(pruned.head_config)
        return real(dense, pruned, profile, **kwargs)

    monkeypatch.setattr(objectives, "measure_speedup", counting)
    return timed


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "sst2").is_dir() or not (SHARED_DATA / "ag_news").is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (they live in ../shared/data beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def trained_tiny():
    """``tiny_context(trained=True)``, trained once for the session (about 4 s), for tests that only read it
    (scoring, statistics): none may train it further or fill its caches."""
    from headsearch.testing import tiny_context

    return tiny_context(trained=True)


@pytest.fixture(scope="session")
def tiny_task():
    return negation_task(200, seed=3, max_len=12)


def _randomise(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial weights (biases too), so that equivalence tests can fail."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def make_tiny_builtin(task):
    clf = build_builtin(task, BuiltinConfig(num_layers=3, num_heads=4, hidden_size=32, intermediate_size=48,
                                            max_length=16), seed=0)
    _randomise(clf.model, 1)
    clf.model.eval()
    return clf


@pytest.fixture()
def tiny_builtin(tiny_task):
    return make_tiny_builtin(tiny_task)


WORDS = ["the", "a", "movie", "film", "good", "bad", "not", "great", "plot", "actor", "##s", "##ing", "was", "is", "."]


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A randomly initialised BertModel saved by transformers itself (config.json + model.safetensors + vocab)."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("tiny_bert")
    config = transformers.BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=40, max_position_embeddings=32)
    torch.manual_seed(0)
    model = transformers.BertModel(config)
    _randomise(model, 2)
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    return folder


def make_tiny_bert(folder):
    clf = open_base(folder, label_names=("neg", "pos"), max_length=16)
    _randomise(clf.model.hf.classifier, 3)
    clf.model.eval()
    return clf


@pytest.fixture()
def tiny_bert(tiny_bert_dir):
    return make_tiny_bert(tiny_bert_dir)


@pytest.fixture(scope="session")
def minilm_clf():
    clf = open_base("minilm", label_names=("neg", "pos"), max_length=64)
    _randomise(clf.model.hf.classifier, 4)
    return clf


@pytest.fixture(params=["builtin", "bert"])
def any_model(request, tiny_builtin, tiny_bert):
    """Both model kinds, small."""
    return tiny_builtin if request.param == "builtin" else tiny_bert
