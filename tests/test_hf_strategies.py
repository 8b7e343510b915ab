"""Every strategy on the user's Hugging Face models (a BERT encoder, a GQA decoder by query head and by key/value
group): proposals fit, candidates evaluate on the real pruned transformers model, the dense model is left alone."""

from __future__ import annotations

import random

import optuna
import pytest
from hf_models import LABELS, WORDS, save_tiny_classifier

from headsearch.cost import HardwareProfile
from headsearch.data.text import TextDataset
from headsearch.errors import HeadsearchError
from headsearch.heads import HeadConfig
from headsearch.models.hf.model import TransformersClassifier
from headsearch.models.hf.user_model import open_classifier
from headsearch.objectives import Evaluator
from headsearch.searchspace import load_space
from headsearch.strategies import available
from headsearch.strategies.base import StudyContext
from headsearch.strategies.registry import get

# small settings so that the strategies that search or train finish in seconds
SMALL = {
    "astar": {"eval_rows": {"choices": [16]}, "max_masks": {"low": 12, "high": 20}},
    "cahp": {"pool_size": {"choices": [8]}, "curve": {"choices": ["mss"]}, "recovery_epochs": {"high": 1},
             "recovery_rows": {"choices": [16]}},
    "static_gates": {"train_rows": {"choices": [24]}, "max_epochs": {"choices": [1]}, "epochs": {"high": 1}},
    "budgeted_gates": {"train_rows": {"choices": [24]}, "epochs": {"choices": [1]}},
    "budgetformer": {"train_rows": {"choices": [24]}, "epochs": {"choices": [1]}},
}


def rows(n: int, seed: int) -> TextDataset:
    rng = random.Random(seed)
    texts = tuple(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(n))
    return TextDataset(texts, tuple(i % len(LABELS) for i in range(n)), LABELS, f"rows-{seed}")


@pytest.fixture(scope="module", params=[("bert", "query"), ("llama", "query"), ("llama", "kv_group")],
                ids=["bert", "llama-query", "llama-kv_group"])
def hf_context(request, tmp_path_factory) -> StudyContext:
    family, unit = request.param
    folder = save_tiny_classifier(family, tmp_path_factory.mktemp(family))
    clf = open_classifier(folder, max_length=12, unit=unit)
    train = rows(60, 0)
    return StudyContext(clf, rows(24, 1), train.head(24), seq_len=12, seed=0, train=train)


@pytest.mark.parametrize("name", sorted(available()))
def test_every_strategy_runs_on_transformers_models(name, hf_context):
    context = hf_context
    dense = context.dense.model
    before = {k: v.clone() for k, v in dense.state_dict().items()}
    strategy = get(name).cls()
    if name == "cahp" and dense.num_layers * dense.num_heads < 5:  # 2 layers x 2 key/value groups
        with pytest.raises(HeadsearchError, match="clustering needs at least 5 heads"):
            strategy.check_model(dense)
        return
    strategy.check_model(dense)
    strategy.prepare(context)
    space = load_space(strategy.search_space, SMALL.get(name))
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    candidate = strategy.propose(space.suggest(trial, context.num_layers, context.num_heads), context)
    candidate.head_config.check_fits(context.num_layers, context.num_heads, allow_empty_layers=True)
    if candidate.model is not None:
        assert isinstance(candidate.model.model, TransformersClassifier)
        assert type(candidate.model.model.hf) is type(dense.hf)
    objectives = Evaluator(context.dense, context.search, HardwareProfile(seq_len=12), repeats=1).evaluate_candidate(candidate)
    assert 0.0 <= objectives.accuracy <= 1.0 and 0.0 < objectives.flops_ratio <= 1.0
    if objectives.per_input:  # a routed model (budgetformer): the mean of each input's heads
        assert 0 < objectives.heads_kept <= candidate.head_config.total_kept
    else:
        assert objectives.heads_kept == candidate.head_config.total_kept
    after = dense.state_dict()
    assert all(before[k].equal(after[k]) for k in before)
    assert dense.head_config == HeadConfig.dense(context.num_layers, context.num_heads)


