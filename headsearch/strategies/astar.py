"""A*-style head pruning with an accuracy guarantee on the search subset (after Parnami, Singh, Joshi 2021).

Only the paper's abstract is public (ALGORITHMS.md section 6): A* over head removals removes as many
heads as possible while accuracy stays within a tolerance. This module implements the formulation
ALGORITHMS.md proposes, as a best-first search:

1. **State**: the set ``P`` of pruned heads (every layer keeps at least one head). Start: ``P = {}``.
2. **Feasible** when ``acc(P) >= acc({}) - epsilon`` on a fixed evaluation subset of the search split.
   Only feasible states are generated: every state on a path satisfies the tolerance, so the search
   never walks through a mask that breaks it.
3. **Goal**: the largest feasible ``P`` (ties: higher accuracy, then lower loss).
4. **Priority**: ``f(P) = g(P) + h(P)``, largest first, with ``g = |P|`` and ``h`` an optimistic count of
   further removable heads (``heuristic``):
   - ``ablation``: the heads whose single removal from ``P`` keeps it feasible. Every candidate's removal
     is evaluated when ``P`` is expanded. *Admissible when accuracy is monotone in the mask* (removing a
     head never raises accuracy): then every head of a feasible superset of ``P`` passes alone. Real
     models are not monotone, so on them it is a heuristic, not a bound.
   - ``importance``: candidates ranked by Michel et al. gradient importance at ``P`` (one backward pass
     over the subset); only the ``branching`` least important are evaluated. ``h`` = the feasible ones
     among them, plus every unevaluated candidate when none of the evaluated ones failed (optimistic if a
     less important head is never harder to remove than a more important one; not admissible in general).
   - ``bound``: every remaining removable head. Always admissible, hence A* with it and unlimited
     branching is exact (and as costly as exhaustive search); tests use it as the reference.
   A successor ``P + {x}`` inherits ``h(P) - 1`` until it is expanded (under the same assumption its
   feasible removals are a subset of its parent's); expansion replaces it by its own ``h`` and, when that
   lowers ``f`` below the best waiting state, re-queues the state instead of expanding it (lazy A*).
   **Order**: ``g + weight * h``, ties to the deeper state. ``weight = 1`` is A*; ``weight < 1`` is weighted A*
   (Pohl 1970): with an optimistic ``h`` that shrinks as heads go, A* expands most shallow states before
   any deep one and a limit on masks scored runs out near the root; a smaller weight dives first. States
   whose bound ``g + h`` cannot beat the best found are skipped either way, so a search that empties its
   frontier is still exact under an admissible ``h``.
5. **Successors**: ``P + {x}`` for the ``branching`` most promising feasible candidates (highest accuracy,
   then lowest loss). ``branching = 0`` keeps all feasible ones (needed for the optimality guarantee).
6. A **closed set** of expanded states; every mask's score is **memoised**; candidate masks are scored
   in batches against their parent's activations, rows the parent is least sure of first, and a mask
   stops being scored once it is certain to break the tolerance (``headsearch.analysis.mask_eval``): feasibility
   decisions and the scores of feasible masks are those of a full pass, so the search is unchanged.
7. **Stop** when the best waiting ``f`` cannot beat the best state found (``optimal``, weight 1 only: exact
   under an admissible ``h``), the frontier is empty, the next expansion would score more than ``max_masks``
   masks (``max masks``), or the time limit passed (``time limit``); the best feasible state so far is returned.

The tolerance holds on the evaluation subset only; the strategy reports accuracy on the rest of the
search split as a held-out check, and ``benchmarks/astar.py`` on the test split.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from headsearch.analysis.mask_eval import MaskEvaluator, MaskScore
from headsearch.heads import HeadConfig
from headsearch.models.training import accuracy
from headsearch.strategies.base import Candidate, Strategy, StudyContext

Heuristic = Literal["ablation", "importance", "bound"]
State = frozenset[int]  # pruned heads, as layer * num_heads + head


@dataclass(frozen=True, kw_only=True)
class AStarSettings:
    epsilon: float = 0.0            # tolerated absolute accuracy drop (0.01 = one point)
    branching: int = 8              # successors kept per expansion; 0 = all feasible ones
    heuristic: Heuristic = "ablation"
    weight: float = 1.0             # w in the priority g + w*h: 1 = A*; below 1 = weighted A*, dives deeper sooner
    max_masks: int = 2000         # masks scored at most (the dense mask included)
    time_limit_s: float | None = 1800.0  # wall clock per search; the best feasible state so far is returned

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon < 1.0:
            raise ValueError(f"The 'epsilon' parameter of A* must be a float in [0, 1). Got {self.epsilon!r} instead.")
        if isinstance(self.branching, bool) or not isinstance(self.branching, int) or self.branching < 0:
            raise ValueError(f"The 'branching' parameter of A* must be an int >= 0. Got {self.branching!r} instead.")
        if self.heuristic not in ("ablation", "importance", "bound"):
            raise ValueError(f"The 'heuristic' parameter of A* must be one of ablation, importance, bound. "
                             f"Got {self.heuristic!r} instead.")
        if self.heuristic == "importance" and self.branching == 0:
            raise ValueError("The 'importance' heuristic evaluates only the 'branching' least important heads; "
                             "set branching >= 1.")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"The 'weight' parameter of A* must be a float in [0, 1]. Got {self.weight!r} instead.")
        if isinstance(self.max_masks, bool) or not isinstance(self.max_masks, int) or self.max_masks < 1:
            raise ValueError(f"The 'max_masks' parameter of A* must be an int >= 1. Got {self.max_masks!r} instead.")
        if self.time_limit_s is not None and self.time_limit_s <= 0:
            raise ValueError(f"The 'time_limit_s' parameter of A* must be > 0 or None. Got {self.time_limit_s!r}.")


@dataclass
class AStarResult:
    pruned: State
    head_config: HeadConfig
    score: MaskScore                # of the returned state, on the evaluation subset
    dense_score: MaskScore
    threshold: float                # accuracy a state needs to be feasible
    evaluations: int                # masks scored (memo hits not counted)
    importance_passes: int          # gradient passes of the importance heuristic (not counted in max_masks)
    expansions: int
    wall_s: float
    stop_reason: str
    trace: list[tuple[int, int]] = field(default_factory=list)  # (evaluations, heads pruned) at each new best
    scoring: dict[str, int] = field(default_factory=dict)  # the evaluator's ScoringCounts spent by this search


@dataclass
class _Expansion:
    h: int
    successors: list[State]


def astar_prune(evaluator: MaskEvaluator, settings: AStarSettings, *, progress: bool = False) -> AStarResult:
    """Search for the largest set of heads whose removal keeps accuracy within ``settings.epsilon``."""
    L, H = evaluator.num_layers, evaluator.num_heads
    start_time = time.monotonic()
    counts_before = evaluator.counts.to_dict()
    scores: dict[State, MaskScore] = {}
    importance_passes = 0

    def mask(state: State) -> torch.Tensor:
        m = torch.ones(L * H)
        m[list(state)] = 0.0
        return m.view(L, H)

    def candidates(state: State) -> list[int]:
        """Heads that may be removed next: alive, and not the last head of their layer."""
        alive = [[i * H + h for h in range(H) if i * H + h not in state] for i in range(L)]
        return [x for layer in alive if len(layer) > 1 for x in layer]

    def rank(state: State) -> tuple[float, float]:
        return (-scores[state].accuracy, scores[state].loss)

    root: State = frozenset()
    scores[root] = evaluator.score([mask(root)])[0]
    evaluations = 1
    threshold = scores[root].accuracy - settings.epsilon
    best = root
    trace = [(evaluations, 0)]
    bar = tqdm(total=settings.max_masks, desc="A* masks scored", unit="mask", leave=False, disable=not progress)
    bar.update(1)

    def expand(state: State) -> _Expansion:
        nonlocal evaluations, importance_passes, best
        cands = candidates(state)
        if settings.heuristic == "importance":
            importance = evaluator.importance(mask(state)).flatten()
            importance_passes += 1
            cands.sort(key=lambda x: importance[x].item())
            evaluated = cands[: settings.branching]
        else:
            evaluated = cands
        fresh = [state | {x} for x in evaluated if state | {x} not in scores]
        # infeasible children stop being scored once that is certain; feasible ones are scored in full (ranked below)
        children = evaluator.score([mask(c) for c in fresh], reference=mask(state), at_least=threshold)
        for child, s in zip(fresh, children, strict=True):
            scores[child] = s
        evaluations += len(fresh)
        bar.update(len(fresh))
        feasible = sorted((state | {x} for x in evaluated if scores[state | {x}].accuracy >= threshold), key=rank)
        for child in feasible[:1]:
            if len(child) > len(best) or (len(child) == len(best) and rank(child) < rank(best)):
                best = child
                trace.append((evaluations, len(child)))
                bar.set_postfix(pruned=len(best), acc=f"{scores[best].accuracy:.4f}")
        if settings.heuristic == "bound":
            h = len(cands)
        elif settings.heuristic == "ablation":
            h = len(feasible)
        else:
            any_failed = len(feasible) < len(evaluated)
            h = len(feasible) + (0 if any_failed else len(cands) - len(evaluated))
        return _Expansion(h, feasible[: settings.branching] if settings.branching else feasible)

    def cost(state: State) -> int:
        """Masks the expansion of ``state`` will score (what max_masks is checked against)."""
        n = len(candidates(state))
        n = min(n, settings.branching) if settings.heuristic == "importance" else n
        return n  # an upper bound: memo hits are free

    tie = itertools.count()
    frontier: list[tuple[float, int, float, float, int, State]] = []
    waiting: dict[State, tuple[int, int]] = {}  # state -> (bound g + h, id of its live heap entry)

    def push(state: State, f: int) -> None:
        if state in waiting and waiting[state][0] >= f:
            return
        entry = next(tie)
        waiting[state] = (f, entry)  # any older entry of this state is now stale
        acc, loss = rank(state)
        priority = len(state) + settings.weight * (f - len(state))
        # ties go to the deeper state (closer to a goal), then to higher accuracy, lower loss, first queued
        heapq.heappush(frontier, (-priority, -len(state), acc, loss, entry, state))

    push(root, len(candidates(root)))
    expanded: dict[State, _Expansion] = {}
    closed: set[State] = set()
    stop_reason = "frontier empty"
    while frontier:
        *_, entry, state = heapq.heappop(frontier)
        if state in closed or waiting.get(state, (0, -1))[1] != entry:
            continue  # already expanded, or a stale entry superseded by a re-queue
        f = waiting.pop(state)[0]
        if f <= len(best):
            if settings.weight == 1.0:
                stop_reason = "optimal"  # popped in order of the bound: no waiting state can beat best
                break
            continue  # weighted order: this state cannot beat best, others may
        if state not in expanded:
            if settings.time_limit_s is not None and time.monotonic() - start_time > settings.time_limit_s:
                stop_reason = "time limit"
                break
            if evaluations + cost(state) > settings.max_masks:
                stop_reason = "max masks"
                break
            expanded[state] = expand(state)
            exact_f = len(state) + expanded[state].h
            if exact_f < f:
                push(state, exact_f)  # lazy A*: wait in line with the exact bound
                continue
        closed.add(state)
        h = expanded[state].h
        for child in expanded[state].successors:
            if child not in closed:
                push(child, len(child) + max(0, h - 1))
    bar.close()
    return AStarResult(
        pruned=best, head_config=HeadConfig.from_mask(mask(best)), score=scores[best], dense_score=scores[root],
        threshold=threshold, evaluations=evaluations, importance_passes=importance_passes,
        expansions=len(expanded), wall_s=time.monotonic() - start_time, stop_reason=stop_reason, trace=trace,
        scoring={k: v - counts_before[k] for k, v in evaluator.counts.to_dict().items()},
    )


class AStarStrategy(Strategy):
    name = "astar"
    search_space = "astar.yaml"

    def propose(self, params: Mapping[str, Any], context: StudyContext) -> Candidate:
        params = self.with_defaults(params)
        rows = int(params["eval_rows"])
        subset, heldout = context.search.split(rows, seed=context.seed)
        settings = AStarSettings(
            epsilon=float(params["epsilon"]), branching=int(params["branching"]),
            heuristic=params["heuristic"], weight=float(params["weight"]),
            max_masks=int(params["max_masks"]),
            time_limit_s=params["time_limit_s"],
        )
        result: AStarResult = context.cached("astar", (rows, settings), lambda: astar_prune(
            # tokenised once per subset, shared by its settings
            context.cached("astar", ("evaluator", rows), lambda: MaskEvaluator(context.dense, subset)),
            settings, progress=True))
        info = {
            "search_rows": len(subset), "search_accuracy": result.score.accuracy,
            "dense_search_accuracy": result.dense_score.accuracy, "heads_pruned": len(result.pruned),
            "evaluations": result.evaluations, "masks_to_best": result.trace[-1][0],
            "expansions": result.expansions, "wall_s": round(result.wall_s, 2),
            "masks_stopped_early": result.scoring["stopped_early"],
            "mask_rows_scored": round(result.scoring["mask_rows"] / max(1, result.scoring["mask_rows_full"]), 3),
            "stop_reason": result.stop_reason,
        }
        if len(heldout):
            gates = torch.tensor(result.head_config.mask())
            info |= {"heldout_rows": len(heldout), "heldout_accuracy": accuracy(context.dense, heldout, gates=gates)}
        description = (f"A* ({settings.heuristic}, eps {settings.epsilon:g}): {len(result.pruned)} heads pruned, "
                       f"{result.evaluations} masks scored, stopped: {result.stop_reason}")
        return Candidate(result.head_config, description, info)
