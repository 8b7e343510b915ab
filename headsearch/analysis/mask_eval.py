"""Accuracy and loss of many head masks on one fixed set of examples, computed on the dense model.

Searches that score thousands of masks (A*, accuracy curves) use this instead of pruning a model per
mask: a binary gate and the structurally pruned model give the same logits (the HeadedModel
contract), and gating costs no copy. Two savings, both exact:

- **prefix reuse**: masks are scored against a reference mask (in a search, the parent state); a mask
  that first differs from it in layer ``l`` restarts the forward pass from the reference's token states
  entering layer ``l``, since the layers before ``l`` see the same gates;
- **several masks per pass**: masks that restart at the same layer are stacked along the batch (one
  copy of the examples per mask, per-example gates) up to ``rows_per_pass`` rows;
- **memo**: a mask's score is kept and reused by every later call (A* trials of a study that share the
  evaluator meet the same masks near the root).

Prefix reuse runs on every model (``HeadedModel.prefix`` / ``resume``; a transformers model replays
the reference's output in the layers it skips).

A third saving, for searches that only need to know whether a mask reaches an accuracy (``at_least``):

- **early stop of infeasible masks**: the first batch scored holds the rows of smallest reference margin
  (the true class's logit minus the best other one; rows it gets wrong first), the rows a removal is most
  likely to flip; a mask stops being scored as soon as its wrong rows exceed what ``at_least`` allows. Such a
  mask's score is not exact (``exact=False``): its accuracy is an upper bound, below ``at_least``, and
  its loss is NaN. Masks that reach ``at_least`` are scored on every row, so their accuracy and loss are
  those of a full pass (a search ranks the feasible masks by them). The reference's margins are kept
  from its own full scoring (a search's parent was scored as a child), else they cost one pass of it.

Examples are tokenised once (``EncodedSplit``: sorted by length, padded per batch; reordered rows are
re-padded per batch, which leaves each row's logits unchanged up to float rounding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from headsearch.analysis.head_scores import gradient_importance
from headsearch.data.text import TextDataset
from headsearch.errors import HeadConfigError
from headsearch.models.encoded import EncodedSplit
from headsearch.models.text_classifier import TextClassifier


@dataclass(frozen=True)
class MaskScore:
    accuracy: float
    loss: float  # mean cross-entropy; breaks ties between masks of equal accuracy
    exact: bool = True  # False: scoring stopped once the mask could not reach ``at_least`` (accuracy is an upper bound)


@dataclass
class ScoringCounts:
    """What scoring cost, and what the early stop saved: mask-rows are (mask, example) pairs run through
    the model from the layer where the mask starts to differ from its reference."""

    masks: int = 0                # masks asked for
    memo_hits: int = 0            # masks answered by an earlier score of the same mask
    stopped_early: int = 0        # masks whose scoring stopped once they could not reach ``at_least``
    mask_rows: int = 0            # mask-rows scored
    mask_rows_full: int = 0       # mask-rows a full scoring of every mask asked for would have run
    reference_rows: int = 0       # rows of the reference passes that give the margins
    layer_rows_reused: int = 0    # mask-rows x layers skipped by prefix reuse

    def to_dict(self) -> dict[str, int]:
        return dict(vars(self))


def needed_correct(at_least: float, total: int) -> int:
    """Fewest correct rows out of ``total`` whose accuracy ``correct / total`` is ``>= at_least`` (as floats compare)."""
    c = max(0, min(total, math.ceil(at_least * total)))
    while c > 0 and (c - 1) / total >= at_least:
        c -= 1
    while c <= total and c / total < at_least:
        c += 1
    return c


class MaskEvaluator:
    """Scores head masks ``[layers, heads]`` (1 keeps a head, 0 removes it) of ``clf`` on ``data``."""

    def __init__(self, clf: TextClassifier, data: TextDataset, *, batch_size: int = 64, rows_per_pass: int = 256,
                 reuse_prefix: bool = True):
        if rows_per_pass < 1:
            raise ValueError(f"rows_per_pass must be >= 1. Got {rows_per_pass}.")
        self.clf = clf
        self.data = data
        self.rows_per_pass = rows_per_pass
        self.reuse_prefix = reuse_prefix
        self.counts = ScoringCounts()
        self._memo: dict[bytes, MaskScore] = {}  # by the mask's bytes: scores do not depend on the reference
        self._margins: dict[bytes, torch.Tensor] = {}  # per-row margins of the masks scored in full
        self._split = EncodedSplit(clf, data, batch_size=batch_size)

    @property
    def num_layers(self) -> int:
        return self.clf.model.num_layers

    @property
    def num_heads(self) -> int:
        return self.clf.model.num_heads

    def _check(self, mask: torch.Tensor) -> torch.Tensor:
        shape = (self.num_layers, self.num_heads)
        if tuple(mask.shape) != shape:
            raise HeadConfigError(f"A head mask must have shape [layers, heads] = {list(shape)}. Got {list(mask.shape)}.")
        return mask.float()

    def score(self, masks: Sequence[torch.Tensor], reference: torch.Tensor | None = None, *,
              at_least: float | None = None) -> list[MaskScore]:
        """Accuracy and mean loss of every mask; ``reference`` (default: all heads) is the prefix to reuse.
        ``at_least``: an accuracy the caller compares against; a mask that cannot reach it stops being
        scored as soon as that is certain (its score is then an upper bound, ``exact=False``).
        A mask scored before (by any caller of this evaluator) is not scored again when its score answers:
        an exact one always, an upper bound when it is still below ``at_least``."""
        masks = [self._check(m) for m in masks]
        keys = [_key(m) for m in masks]
        known = {j: self._memo[key] for j, key in enumerate(keys) if key in self._memo
                 and (self._memo[key].exact or (at_least is not None and self._memo[key].accuracy < at_least))}
        todo = [j for j in range(len(masks)) if j not in known]
        fresh = dict(zip(todo, self._score([masks[j] for j in todo], reference, at_least), strict=True))
        for j, s in fresh.items():
            if s.exact or keys[j] not in self._memo:
                self._memo[keys[j]] = s
        self.counts.masks += len(masks)
        self.counts.memo_hits += len(known)
        self.counts.mask_rows_full += len(masks) * len(self.data)
        return [known[j] if j in known else fresh[j] for j in range(len(masks))]

    @torch.inference_mode()
    def _score(self, masks: list[torch.Tensor], reference: torch.Tensor | None, at_least: float | None) -> list[MaskScore]:
        if not masks:
            return []
        model = self.clf.model
        model.eval()
        L, total = self.num_layers, len(self.data)
        ref = torch.ones(L, self.num_heads) if reference is None else self._check(reference)
        if self.reuse_prefix:
            differs = [(m != ref).any(dim=1) for m in masks]
            starts = [int(d.nonzero()[0]) if d.any() else L for d in differs]
        else:
            starts = [0] * len(masks)
        order = self._split.order if at_least is None else self._by_margin(ref)
        batches = self._split.batches if at_least is None else self._split.rebatch(order)
        allowed_wrong = total if at_least is None else total - needed_correct(at_least, total)
        margins = torch.empty(len(masks), total)  # per row, kept for the masks scored in full (future references)
        # float64 sums: a mask's loss does not depend on the order its rows are scored in
        correct, loss, seen = torch.zeros(len(masks)), torch.zeros(len(masks), dtype=torch.float64), torch.zeros(len(masks))
        live = list(range(len(masks)))
        for (ids, attn, labels), index in zip(batches, order.split(self._split.batch_size), strict=True):
            if not live:
                break
            n = ids.shape[0]
            groups: dict[int, list[int]] = {}
            for j in live:
                groups.setdefault(starts[j], []).append(j)
            if self.reuse_prefix:  # outputs[l]: what the reference's layer l outputs, entering layer l + 1
                outputs = model.prefix(ids, attn, ref, max(groups))
            per_pass = max(1, self.rows_per_pass // n)
            for start, members in groups.items():
                for c in range(0, len(members), per_pass):
                    chunk = members[c:c + per_pass]
                    k = len(chunk)
                    a = attn.repeat(k, 1)
                    gates = torch.stack([masks[j] for j in chunk]).repeat_interleave(n, dim=0)
                    if self.reuse_prefix and start > 0:
                        logits = model.resume(ids.repeat(k, 1), a, gates, outputs[start - 1], start, copies=k)
                    else:
                        logits = model(ids.repeat(k, 1), a, gates=gates)
                    logits = logits.view(k, n, -1)
                    correct[chunk] += (logits.argmax(-1) == labels).sum(1).float()
                    margins[torch.tensor(chunk)[:, None], index[None, :]] = _margins(logits, labels)
                    loss[chunk] += F.cross_entropy(logits.transpose(1, 2), labels.expand(k, n), reduction="none").double().sum(1)
                    seen[chunk] += n
                self.counts.layer_rows_reused += len(members) * n * start
            self.counts.mask_rows += len(live) * n
            live = [j for j in live if seen[j] - correct[j] <= allowed_wrong]  # the rest cannot reach at_least
        scores = []
        for j, (c, lo, n) in enumerate(zip(correct.tolist(), loss.tolist(), seen.tolist(), strict=True)):
            if n == total:
                scores.append(MaskScore(c / total, lo / total))
                self._margins[_key(masks[j])] = margins[j].clone()
            else:  # stopped: every row not scored counted as correct
                scores.append(MaskScore((c + total - n) / total, float("nan"), exact=False))
                self.counts.stopped_early += 1
        return scores

    @property
    def evaluations(self) -> int:
        """Masks asked for so far (memo hits included)."""
        return self.counts.masks

    def _by_margin(self, reference: torch.Tensor) -> torch.Tensor:
        """Rows of the split in scoring order: first the batch of rows the reference gets wrong or right by the
        smallest margin, then the rest by length as usual (ordering every row by margin would pad every batch
        to nearly the longest row, which costs the feasible masks, scored on every row, more than it saves).
        The reference's margins come from its own full scoring when it had one (a search's parent), else
        from one pass of it."""
        model = self.clf.model
        key = _key(reference)
        if key not in self._margins:
            margins = torch.empty(len(self.data))
            rows = self._split.order.split(self._split.batch_size)
            for (ids, attn, labels), index in zip(self._split.batches, rows, strict=True):
                margins[index] = _margins(model(ids, attn, gates=reference), labels)
            self._margins[key] = margins
            self.counts.reference_rows += len(self.data)
        risky = torch.zeros(len(self.data), dtype=torch.bool)
        risky[torch.argsort(self._margins[key], stable=True)[: self._split.batch_size]] = True
        by_length = self._split.order
        return torch.cat([by_length[risky[by_length]], by_length[~risky[by_length]]])

    def importance(self, mask: torch.Tensor) -> torch.Tensor:
        """Michel et al. gradient importance of every head at ``mask``, on this evaluator's examples."""
        return gradient_importance(self.clf, self.data, mask=self._check(mask))


def _margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The true class's logit minus the best other one, per row (negative: wrong); ``logits`` ``[..., rows, classes]``."""
    index = labels.expand(logits.shape[:-1])[..., None]
    return logits.gather(-1, index).squeeze(-1) - logits.scatter(-1, index, float("-inf")).max(-1).values


def _key(mask: torch.Tensor) -> bytes:
    """A mask's identity in the evaluator's memos (scores and margins do not depend on the reference)."""
    return mask.bool().numpy().tobytes()
