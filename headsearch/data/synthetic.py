"""Synthetic text tasks that need attention (no files needed).

``negation_task``: topic cue words whose class a "not" flips. Each sentence holds filler words and one
cue word of a class; when the sentence also holds "not", the label is the next class instead. The
classifier reads a mean of per-token states, and a mean of features each computed from one token cannot
express "cue of class k AND a not somewhere": tokens must exchange information, which only attention
heads do. One relation: a pruned model keeps it with few heads, so accuracy barely moves (tests use it).

``modifier_task``: the quickstart's task. A cue word of one of four classes and, in half the sentences,
one of six modifier words, each shifting the class by its own amount. Six relations to carry, spread
over heads: accuracy falls gradually as heads go, and falls faster when the wrong heads go.

``lookup_task`` and ``vote_task``: difficulty tasks whose need per input is known (1..4 lookups, each about
one head of dimension 1), for checking that a per-input budget follows the need. ``lookup_task``'s label
turns on finding one wrong answer, ``vote_task``'s on reading every answer.
"""

from __future__ import annotations

import random

from headsearch.data.text import TextDataset

_FILLER = tuple(f"w{i}" for i in range(200))


def _check_sizes(task: str, num_classes: int, rate_name: str, rate: float, min_len: int, max_len: int) -> None:
    if num_classes < 2:
        raise ValueError(f"{task} needs num_classes >= 2. Got {num_classes}.")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{task} needs 0 <= {rate_name} <= 1. Got {rate}.")
    if not 3 <= min_len <= max_len:
        raise ValueError(f"{task} needs 3 <= min_len <= max_len. Got {min_len}, {max_len}.")


def negation_task(num_examples: int, *, num_classes: int = 2, seed: int = 0, min_len: int = 8,
                  max_len: int = 24, cues_per_class: int = 6, negation_rate: float = 0.3) -> TextDataset:
    """``num_examples`` sentences of ``min_len..max_len`` words.

    A fraction ``negation_rate`` of cues is negated: the cue word alone then predicts the label
    ``1 - negation_rate`` of the time, and the rest needs attention (a measurable cost of pruning).
    """
    _check_sizes("negation_task", num_classes, "negation_rate", negation_rate, min_len, max_len)
    rng = random.Random(seed)
    cues = [[f"c{k}x{j}" for j in range(cues_per_class)] for k in range(num_classes)]
    texts, labels = [], []
    for _ in range(num_examples):
        length = rng.randint(min_len, max_len)
        words = [rng.choice(_FILLER) for _ in range(length)]
        topic = rng.randrange(num_classes)
        pos = rng.randrange(length)
        words[pos] = rng.choice(cues[topic])
        negated = rng.random() < negation_rate
        if negated:
            words[rng.choice([i for i in range(length) if i != pos])] = "not"
        texts.append(" ".join(words))
        labels.append((topic + 1) % num_classes if negated else topic)
    names = tuple(f"class{k}" for k in range(num_classes))
    return TextDataset(tuple(texts), tuple(labels), names, f"negation(seed={seed})")



MODIFIERS = ("not", "very", "hardly", "never", "barely", "quite")


def modifier_task(num_examples: int, *, num_classes: int = 4, seed: int = 0, min_len: int = 10, max_len: int = 24,
                  cues_per_class: int = 6, modifier_rate: float = 0.5) -> TextDataset:
    """``num_examples`` sentences: filler words, one cue word of a class and, with probability
    ``modifier_rate``, one word of ``MODIFIERS``; modifier ``i`` shifts the label by ``1 + i % (num_classes - 1)``
    classes. The cue alone is right only for unmodified sentences; each modifier is a relation of its own.
    Measured on the retired built-in 4x8 encoder of headsearch 0.1.0 (hidden 128) trained as the quickstart
    did (3,000 rows of seed 1, 5 epochs, lr 2e-3), dev (500 rows of seed 2): dense 0.948; keeping 75/50/25% of heads by gradient
    importance 0.944/0.888/0.660, at random (median of 3 seeds) 0.886/0.848/0.524."""
    _check_sizes("modifier_task", num_classes, "modifier_rate", modifier_rate, min_len, max_len)
    rng = random.Random(seed)
    shift = {m: 1 + i % (num_classes - 1) for i, m in enumerate(MODIFIERS)}
    cues = [[f"c{k}x{j}" for j in range(cues_per_class)] for k in range(num_classes)]
    texts, labels = [], []
    for _ in range(num_examples):
        length = rng.randint(min_len, max_len)
        words = [rng.choice(_FILLER) for _ in range(length)]
        topic = rng.randrange(num_classes)
        cue, other = rng.sample(range(length), 2)
        words[cue] = rng.choice(cues[topic])
        label = topic
        if rng.random() < modifier_rate:
            modifier = rng.choice(MODIFIERS)
            words[other] = modifier
            label = (topic + shift[modifier]) % num_classes
        texts.append(" ".join(words))
        labels.append(label)
    names = tuple(f"class{k}" for k in range(num_classes))
    return TextDataset(tuple(texts), tuple(labels), names, f"modifiers(seed={seed})")


def lookup_task(num_examples: int, *, num_lookups: int = 4, length: int = 16, seed: int = 0) -> TextDataset:
    """Inputs that need a known number of heads: 1..``num_lookups`` independent token-pair lookups.

    Lookup ``j`` is active when its key word ``k{j}`` is in the sentence; its answer word, ``y{j}`` or
    ``n{j}``, always is (for an inactive lookup a random distractor). Label ``bad`` when some active
    lookup's answer is ``n{j}`` (exactly one, in half the sentences), else ``ok``. A mean of per-token
    features cannot express "``k{j}`` and ``n{j}`` both present", so each lookup needs attention; with
    head dimension 1 a head's score matrix has rank 1 and serves about one key-answer pairing, so an
    input with ``n`` active lookups needs about ``n`` heads. ``count_lookups`` reads ``n`` from a text.
    """
    def answers(rng: random.Random, active: list[int]) -> tuple[set[int], int]:
        bad = rng.random() < 0.5
        return ({rng.choice(active)} if bad else set()), int(bad)

    return _lookups("lookup_task", "lookups", answers, num_examples, num_lookups, length, seed)


def vote_task(num_examples: int, *, num_lookups: int = 4, length: int = 16, seed: int = 0) -> TextDataset:
    """``lookup_task``'s sentences with another rule: the active lookups vote, label ``bad`` when more
    than half of them answer ``n{j}``. Every vote sits at the tie-break (``n`` active lookups hold
    ``floor(n / 2)`` or ``floor(n / 2) + 1`` ``n`` answers), so one unread answer leaves the label open
    and an input with ``n`` active lookups needs all ``n`` pairings read, where ``lookup_task``'s ``bad``
    inputs are decided by finding the one ``n`` answer. ``count_lookups`` reads ``n``."""
    def answers(rng: random.Random, active: list[int]) -> tuple[set[int], int]:
        noes = len(active) // 2 + (rng.random() < 0.5)
        return set(rng.sample(active, noes)), int(2 * noes > len(active))

    return _lookups("vote_task", "votes", answers, num_examples, num_lookups, length, seed)


def _lookups(task: str, name: str, answers, num_examples: int, num_lookups: int, length: int,
             seed: int) -> TextDataset:
    """Sentences of filler words with 1..``num_lookups`` active keys ``k{j}`` and one answer word per lookup;
    ``answers(rng, active)`` picks which active lookups answer ``n`` and the label."""
    if num_lookups < 1 or length < 2 * num_lookups:
        raise ValueError(f"{task} needs num_lookups >= 1 and length >= 2 * num_lookups. Got {num_lookups}, {length}.")
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(num_examples):
        active = rng.sample(range(num_lookups), rng.randint(1, num_lookups))
        noes, label = answers(rng, active)
        words = [rng.choice(_FILLER[:30]) for _ in range(length)]
        free = rng.sample(range(length), len(active) + num_lookups)
        for j in active:
            words[free.pop()] = f"k{j}"
        for j in range(num_lookups):
            answer = ("n" if j in noes else "y") if j in active else rng.choice("yn")
            words[free.pop()] = f"{answer}{j}"
        texts.append(" ".join(words))
        labels.append(label)
    return TextDataset(tuple(texts), tuple(labels), ("ok", "bad"), f"{name}(seed={seed})")


def count_lookups(text: str) -> int:
    """Number of active lookups in a ``lookup_task`` or ``vote_task`` sentence (its key words)."""
    return sum(1 for w in text.split() if w[0] == "k" and w[1:].isdigit())
