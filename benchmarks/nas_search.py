"""NAS against random search: hypervolume (accuracy x FLOPs) after a number of trials, over sampler seeds.

    python benchmarks/nas_search.py studies/sst2_minilm.yaml --seeds 0,1,2 --nas-trials 50 --random-trials 150

Uses the study's dense model (trained once, or reused from ``--out``), search split and sampler. Every
(variant, seed) is an in-memory Optuna study whose sampler is seeded with that seed, with objectives
accuracy (search split, heads gated on the dense model: the same logits as the pruned model) and FLOPs,
so no latency is timed. Variants:

- ``random``: the ``random`` strategy as it ships;
- ``nas``: the ``nas`` strategy as it ships (a total budget and its split across layers);
- ``nas-counts``: one head count per layer, sampled independently (``nas`` before issue 17);
- ``nas-pop10``, ``nas-tpe``: ``nas`` under NSGA-II with a population of 10 (default 50: 50 trials are
  then its random first generation), or under multi-objective TPE.

Prints, per variant: hypervolume mean and range over seeds, each seed's, and the trials each seed needed
to reach 95% of its own final hypervolume; random's hypervolume after its first ``--nas-trials`` trials
(the same runs, cut); then each NAS variant's mean against random's. Results are cached per
(variant, seed, trials) in ``--keep`` (default ``<out>/nas_search.json``) so that reruns only add what is new.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import torch
from _study import open_study, study_parser

from headsearch.cost.flops import count_flops
from headsearch.heads import HeadConfig
from headsearch.models.encoded import EncodedSplit
from headsearch.pareto import Point, hypervolume, trials_to_reach
from headsearch.search.samplers import SAMPLERS
from headsearch.searchspace import SearchSpace, load_space
from headsearch.strategies.base import Candidate, StudyContext
from headsearch.strategies.nas import NasStrategy
from headsearch.strategies.random_heads import RandomStrategy


class PerLayerCounts(NasStrategy):
    """``nas`` before issue 17: the sampler draws every layer's head count on its own."""

    def propose(self, params: Mapping[str, Any], context: StudyContext) -> Candidate:
        counts = [int(params[f"heads_layer_{layer}"]) for layer in range(context.num_layers)]
        return Candidate(HeadConfig.top_per_layer(context.importance(), counts), f"per-layer counts {counts}")


COUNTS_SPACE = SearchSpace(params={"heads_layer": {"type": "int", "low": 1, "high": "num_heads", "per_layer": True}})
NAS_SPACE = lambda: load_space("nas.yaml")  # noqa: E731
# name: (strategy, search space, sampler for a seed; None: the study's)
VARIANTS = {
    "random": (RandomStrategy, lambda: load_space("random.yaml"), None),
    "nas": (NasStrategy, NAS_SPACE, None),
    "nas-counts": (PerLayerCounts, lambda: COUNTS_SPACE, None),
    "nas-pop10": (NasStrategy, NAS_SPACE, lambda seed: optuna.samplers.NSGAIISampler(population_size=10, seed=seed)),
    "nas-tpe": (NasStrategy, NAS_SPACE, lambda seed: optuna.samplers.TPESampler(seed=seed)),
}


def run_variant(name: str, seed: int, trials: int, context: StudyContext, sampler: str,
                score: dict[HeadConfig, tuple[float, float]], split: EncodedSplit, dense_flops: float) -> list[list[float]]:
    """``[accuracy, flops_ratio]`` of each trial, in trial order."""
    strategy_cls, space, make_sampler = VARIANTS[name]
    strategy, space = strategy_cls(), space()
    strategy.prepare(context)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=(make_sampler or SAMPLERS[sampler])(seed))
    values = []
    for _ in range(trials):
        trial = study.ask()
        config = strategy.propose(space.suggest(trial, context.num_layers, context.num_heads), context).head_config
        if config not in score:
            acc = split.accuracy(context.dense.model, torch.tensor(config.mask(), dtype=torch.float32))
            score[config] = (acc, count_flops(context.dense.model.shape, config, context.seq_len).total / dense_flops)
        study.tell(trial, list(score[config]))
        values.append(list(score[config]))
    return values


def main() -> None:
    parser = study_parser(__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--nas-trials", type=int, default=50)
    parser.add_argument("--random-trials", type=int, default=150)
    parser.add_argument("--variants", default="random,nas,nas-counts")
    parser.add_argument("--keep", help="JSON file of finished runs (default: <run folder>/nas_search.json)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config, context, _ = open_study(args)
    keep = Path(args.keep or Path(config.output) / "nas_search.json")
    done: dict[str, list[list[float]]] = json.loads(keep.read_text()) if keep.exists() else {}
    split = EncodedSplit(context.dense, context.search)
    full = HeadConfig.dense(context.num_layers, context.num_heads)
    dense_flops = count_flops(context.dense.model.shape, full, context.seq_len).total
    score: dict[HeadConfig, tuple[float, float]] = {}
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{config.name}: {context.num_layers}x{context.num_heads} heads, {len(context.search)} search rows, "
          f"sampler {config.sampler}, dense accuracy {split.accuracy(context.dense.model):.4f}")
    summary = {}
    for name in args.variants.split(","):
        trials = args.random_trials if name == "random" else args.nas_trials
        hvs, reach = [], []
        for seed in seeds:
            key = f"{name}/{seed}/{trials}"
            if key not in done:
                start = time.perf_counter()
                done[key] = run_variant(name, seed, trials, context, config.sampler, score, split, dense_flops)
                keep.write_text(json.dumps(done))
                print(f"  {key}: {time.perf_counter() - start:.0f} s", flush=True)
            points = [Point(name, i, acc, flops, float("nan")) for i, (acc, flops) in enumerate(done[key])]
            hvs.append(hypervolume(points))
            reach.append(trials_to_reach(points, 0.95))
        summary[name] = (trials, hvs)
        print(f"{name:11s} {trials:4d} trials  HV mean {statistics.mean(hvs):.4f}  range {min(hvs):.4f}-{max(hvs):.4f}  "
              f"per seed {' '.join(f'{h:.4f}' for h in hvs)}  trials to 95% of final HV {reach}")
    if "random" in summary and args.random_trials > args.nas_trials:
        first = [hypervolume([Point("random", i, a, f, float("nan")) for i, (a, f) in
                              enumerate(done[f"random/{seed}/{args.random_trials}"][:args.nas_trials])]) for seed in seeds]
        print(f"random's first {args.nas_trials} trials: HV mean {statistics.mean(first):.4f}  range "
              f"{min(first):.4f}-{max(first):.4f}  per seed {' '.join(f'{h:.4f}' for h in first)}")
    if "random" in summary:
        base = statistics.mean(summary["random"][1])
        for name, (trials, hvs) in summary.items():
            if name != "random":
                print(f"{name} at {trials} trials / random at {summary['random'][0]}: {statistics.mean(hvs) / base:.3f} "
                      f"(mean HV), {sum(h >= base for h in hvs)} of {len(hvs)} seeds at or above random's mean")


if __name__ == "__main__":
    main()
