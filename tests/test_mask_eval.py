"""MaskEvaluator: batched, prefix-reusing mask scores equal the structurally pruned model's."""

import random

import pytest
import torch
from floats import same_score
from torch.nn import functional as F

from headsearch import HeadConfig, HeadConfigError
from headsearch.analysis.mask_eval import MaskEvaluator, needed_correct
from headsearch.data import negation_task
from headsearch.errors import DataError
from headsearch.testing import tiny_context


def _random_masks(n, layers, heads, seed):
    rng = random.Random(seed)
    masks = []
    for _ in range(n):
        m = torch.tensor([[float(rng.random() < 0.6) for _ in range(heads)] for _ in range(layers)])
        masks.append(m)
    return masks


def _pruned_score(clf, data, mask):
    config = HeadConfig.from_mask(mask.bool().tolist())
    logits = clf.prune(config).logits(data.texts)
    labels = torch.tensor(data.labels)
    return (logits.argmax(-1) == labels).float().mean().item(), F.cross_entropy(logits, labels).item()


@pytest.mark.parametrize(("reuse_prefix", "rows_per_pass"), [(True, 1), (True, 1000), (False, 64)])
def test_scores_equal_the_pruned_model(trained_tiny, reuse_prefix, rows_per_pass):
    context = trained_tiny
    clf, data = context.dense, context.search
    evaluator = MaskEvaluator(clf, data, batch_size=16, rows_per_pass=rows_per_pass, reuse_prefix=reuse_prefix)
    reference = _random_masks(1, 3, 4, seed=1)[0]
    masks = _random_masks(12, 3, 4, seed=2)
    masks.append(reference.clone())  # identical to the reference: only the classifier runs
    one = reference.clone()
    one[2, 0] = 1 - one[2, 0]  # differs in the last layer only
    masks.append(one)
    scores = evaluator.score(masks, reference=reference)
    assert evaluator.evaluations == len(masks)
    accuracies = set()
    for mask, score in zip(masks, scores, strict=True):
        acc, loss = _pruned_score(clf, data, mask)
        assert round(score.accuracy * len(data)) == round(acc * len(data))
        assert score.loss == pytest.approx(loss, abs=1e-4)
        accuracies.add(round(loss, 4))
    assert len(accuracies) > 5  # the masks really differ, so equality is not trivially met


def test_bad_masks_and_empty_data():
    context = tiny_context()
    evaluator = MaskEvaluator(context.dense, context.search)
    with pytest.raises(HeadConfigError, match=r"shape \[layers, heads\] = \[3, 4\]"):
        evaluator.score([torch.ones(4, 3)])
    assert evaluator.score([]) == []
    with pytest.raises(DataError, match="empty"):
        MaskEvaluator(context.dense, negation_task(4).head(0))


def test_encoded_split_accuracy_matches_unsorted_batches(trained_tiny):
    """Sorting rows by length and padding per batch does not change any prediction."""
    from headsearch.models.encoded import EncodedSplit

    context = trained_tiny
    clf, data = context.dense, context.search
    labels = torch.tensor(data.labels)
    gates = _random_masks(1, 3, 4, seed=5)[0]
    split = EncodedSplit(clf, data, batch_size=7)
    assert len({b[0].shape[1] for b in split.batches}) > 1  # batches really have different widths
    for g in (None, gates):
        expected = (clf.logits(data.texts, batch_size=len(data), gates=g).argmax(-1) == labels).float().mean().item()
        assert split.accuracy(clf.model, g) == pytest.approx(expected, abs=1e-6)  # float32 mean vs exact count


def test_early_stopped_scoring_gives_the_same_feasibility_decisions(trained_tiny):
    """With ``at_least``, infeasible masks stop early (an upper bound below the bar); every decision, and every
    feasible mask's score, equals full scoring."""
    context = trained_tiny
    evaluator = MaskEvaluator(context.dense, context.search, batch_size=16)
    reference = torch.ones(3, 4)
    reference[0, 1] = 0
    masks = _random_masks(30, 3, 4, seed=7)
    full = evaluator.score(masks, reference=reference)
    bars = sorted({s.accuracy for s in full})
    rows = len(context.search)
    for at_least in (bars[len(bars) // 3], bars[len(bars) // 2], bars[-1], bars[-1] + 1 / rows):
        evaluator = MaskEvaluator(context.dense, context.search, batch_size=16)  # an empty memo
        before = evaluator.counts.to_dict()
        early = evaluator.score(masks, reference=reference, at_least=at_least)
        for f, e in zip(full, early, strict=True):
            assert (e.accuracy >= at_least) == (f.accuracy >= at_least)
            if e.exact:  # scored on every row, but in other batches than full scoring: the loss agrees up to rounding
                assert same_score(e, f)
            else:
                assert f.accuracy <= e.accuracy < at_least
        spent = {k: v - before[k] for k, v in evaluator.counts.to_dict().items()}
        stopped = sum(not e.exact for e in early)
        assert spent["stopped_early"] == stopped and spent["reference_rows"] == rows
        assert spent["mask_rows_full"] == len(masks) * rows
        assert (spent["mask_rows"] < spent["mask_rows_full"]) == (stopped > 0)
    # the highest bar but one row fails every mask: all of them stop, most after their first batch
    assert stopped == len(masks) and spent["mask_rows"] < spent["mask_rows_full"] / 2
    # asked again: the bounds still answer below the same bar (the memo's own values), exact scores answer any question
    again = evaluator.score(masks, reference=reference, at_least=at_least)
    assert again == early and evaluator.counts.memo_hits == len(masks)
    rescored = evaluator.score(masks[:3])  # bounds: scored again, three masks a pass where full scoring stacked thirty
    assert all(map(same_score, rescored, full[:3])) and evaluator.counts.memo_hits == len(masks)


def test_scores_agree_across_batch_compositions_and_threads(trained_tiny):
    """The same masks scored one per pass in batches of 7 on one thread, and stacked in batches of 16 on every
    thread: every accuracy (a count of correct rows) and every early-stop decision is equal; losses agree up to
    float rounding (``tests/floats.py``). A CPU with other vector kernels (AVX-512) changes the same digits."""
    context = trained_tiny
    masks = _random_masks(10, 3, 4, seed=11)
    threads = torch.get_num_threads()
    results = []
    try:
        for n_threads, batch_size, rows_per_pass in ((threads, 16, 1000), (1, 7, 1)):
            torch.set_num_threads(n_threads)
            evaluator = MaskEvaluator(context.dense, context.search, batch_size=batch_size, rows_per_pass=rows_per_pass)
            full = evaluator.score(masks, reference=torch.ones(3, 4))
            bar = sorted(s.accuracy for s in full)[5]
            early = MaskEvaluator(context.dense, context.search, batch_size=batch_size,
                                  rows_per_pass=rows_per_pass).score(masks, reference=torch.ones(3, 4), at_least=bar)
            results.append((full, early))
    finally:
        torch.set_num_threads(threads)
    (full, early), *others = results
    assert len({s.accuracy for s in full}) > 2  # the masks differ, so agreement is not trivial
    for other_full, other_early in others:
        assert all(map(same_score, other_full, full))
        assert [s.exact for s in other_early] == [s.exact for s in early] and any(not s.exact for s in early)
        assert all(same_score(a, b) for a, b in zip(other_early, early, strict=True) if a.exact)


def test_needed_correct_matches_the_float_comparison():
    for total in (1, 7, 256, 872):
        for at_least in (0.0, 0.1, 1 / 3, 0.8567, 0.9 - 0.01, 1.0):
            c = needed_correct(at_least, total)
            assert c / total >= at_least or c == total + 1
            assert c == 0 or (c - 1) / total < at_least
