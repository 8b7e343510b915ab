"""Early stopping of the strategies that train: no stopping vs ASHA on accuracy vs MO-ASHA, same seeds.

    python benchmarks/early_stopping.py studies/agnews_builtin.yaml --trials 24

Runs the study's dense model (trained once, copied into every run folder) with static_gates, budgeted_gates
(adaptation of 1 to 3 epochs, so that its trials train) and budgetformer, ``--trials`` each, once per rule,
through the Optuna driver with objectives accuracy and FLOPs (so a rung's cost is the FLOPs ratio and no
timing noise enters). Every run asks the same sampler with the same seed: NSGA-II's first generation (50
trials by default) is random draws from the seed, so up to 50 trials each rule runs the same parameters.
Prints per rule and strategy: trials completed and stopped, training epochs spent (the epochs every trial
reported, summed; budgeted_gates' shared checkpoint, trained once per run under every rule, reports none and
is not counted), hypervolume (accuracy x FLOPs) of the completed trials, and the ratios to no stopping; then
every stopped trial with its budget and where it stopped.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from headsearch.pareto import hypervolume
from headsearch.search.optuna_driver import optuna_study_name
from headsearch.search.rungs import EARLY_STOP_ATTR, EPOCHS_ATTR
from headsearch.search.storage import optuna_storage
from headsearch.study import build_context, load_points, load_run, run_study
from headsearch.study_config import EarlyStoppingConfig, StrategyRun, load_study

STRATEGIES = {
    "static_gates": {},
    "budgeted_gates": {"adapt_epochs": {"low": 1, "high": 3}},
    "budgetformer": {},
}


def budget_of(params: dict) -> str:
    if "budget" in params:
        return f"budget {params['budget']:.2f}"
    return f"target_budget {params['target_budget']:.2f}"  # budgetformer: the mean budget it is held to


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study")
    parser.add_argument("--trials", type=int, default=24, help="trials per strategy and rule")
    parser.add_argument("--rules", default="none,asha,mo_asha")
    parser.add_argument("--eta", type=int, default=4)
    parser.add_argument("--train-rows", type=int, default=None, help="override the strategies' train_rows")
    parser.add_argument("--keep", help="folder to keep the runs in (default: a temporary one, removed)")
    args = parser.parse_args()
    base = load_study(args.study)
    spaces = {name: dict(space) for name, space in STRATEGIES.items()}
    if args.train_rows:
        for space in spaces.values():
            space["train_rows"] = {"choices": [args.train_rows]}
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="early-stopping-"))
    work.mkdir(parents=True, exist_ok=True)
    base = base.model_copy(update={
        "objectives": ("accuracy", "flops"),
        "strategies": tuple(StrategyRun(name=n, n_trials=args.trials, space=s) for n, s in spaces.items()),
        "tracking_uri": f"sqlite:///{work / 'mlflow.db'}",
    })
    if not (work / "seed" / "model").exists():
        build_context(base.model_copy(update={"output": work / "seed"}))  # trains the dense model once
    print(f"study {base.name}: {', '.join(f'{s.name} x{s.n_trials}' for s in base.strategies)}, eta {args.eta}")
    results = {}
    for rule in args.rules.split(","):
        out = work / rule
        if not (out / "run.json").exists():
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(work / "seed" / "model", out / "model")
            config = base.model_copy(update={"output": out, "name": f"{base.name}-{rule}",
                                             "early_stopping": EarlyStoppingConfig(rule=rule, eta=args.eta)})
            start = time.perf_counter()
            run_study(config, progress=False, echo=print)
            print(f"{rule}: {time.perf_counter() - start:.0f} s")
        results[rule] = summarise(out)
    report(results)
    if not args.keep:
        shutil.rmtree(work)


def summarise(out: Path) -> dict:
    info = load_run(out)
    points = load_points(out)
    summary = {}
    for name in info["strategies"]:
        study = optuna.load_study(study_name=optuna_study_name(info["name"], name), storage=optuna_storage(info["storage"]))
        trials = study.get_trials(deepcopy=False)
        stopped = [t for t in trials if t.state == TrialState.PRUNED and EARLY_STOP_ATTR in t.user_attrs]
        summary[name] = {
            "complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "stopped": stopped,
            "epochs": sum(t.user_attrs.get(EPOCHS_ATTR, 0) for t in trials),
            "hv": hypervolume([p for p in points if p.strategy == name]),
        }
    summary["all"] = {"complete": sum(s["complete"] for s in summary.values()),
                      "stopped": [t for s in summary.values() for t in s["stopped"]],
                      "epochs": sum(s["epochs"] for s in summary.values()), "hv": hypervolume(points)}
    return summary


def report(results: dict) -> None:
    rules = list(results)
    reference = results.get("none")
    print(f"\n{'strategy':<15} {'rule':<8} {'complete':>8} {'stopped':>8} {'epochs':>7} {'HV acc x FLOPs':>15}"
          f"{'  epochs/none  HV/none' if reference else ''}")
    for name in results[rules[0]]:
        for rule in rules:
            s = results[rule][name]
            line = f"{name:<15} {rule:<8} {s['complete']:>8} {len(s['stopped']):>8} {s['epochs']:>7} {s['hv']:>15.4f}"
            if reference:
                ref = reference[name]
                line += (f"  {s['epochs'] / ref['epochs']:>11.2f}" if ref["epochs"] else "  " + " " * 11)
                line += f"  {s['hv'] / ref['hv']:>6.3f}" if ref["hv"] else ""
            print(line)
    for rule in rules:
        stopped = [t for name in results[rule] if name != "all" for t in results[rule][name]["stopped"]]
        if stopped:
            print(f"\n{rule} stopped {len(stopped)} trial(s):")
            for name in results[rule]:
                if name == "all":
                    continue
                for t in results[rule][name]["stopped"]:
                    r = t.user_attrs[EARLY_STOP_ATTR]
                    print(f"  {name} #{t.number}: {budget_of(t.params)}, at epoch {r['step']} (rung {r['rung']}): "
                          f"accuracy {r['accuracy']:.3f}, FLOPs ratio {r['cost']:.3f}")


if __name__ == "__main__":
    main()
