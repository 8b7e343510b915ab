"""What sharing early-stopping rungs between workers costs: one study of trials that "train" (the tests' progress-probe
plug-in: 4 epochs of ``--epoch-s`` x k/2 seconds each, accuracy = its ``quality`` parameter, cost = the FLOPs of its k
of 2 heads per layer: cheaper trials train faster, so trials reach a rung in another order than they started)
run by 1 ``headsearch worker`` and by 4 at once on one PostgreSQL storage with an MLflow server (both on loopback,
``tests/local_services.py``), ``mo_asha`` at its defaults. Trials draw the same parameters in every run (samplers
seeded per trial), so the runs differ only in the order trials reach the rungs. Printed: trials stopped, epochs
trained, how many trials' fates (stopped or completed) differ from the 1-worker run, and the hypervolume of the
completed trials (accuracy x FLOPs ratio), and the most trials that ran at one moment. Nothing is asserted.

    python benchmarks/rungs_workers.py --trials 32 --repeats 3 --epoch-s 1.0   # and --trials 64 --repeats 2 --epoch-s 2.0
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from local_services import create_database, missing_postgres, mlflow_server, postgres_server  # noqa: E402
from tiny_study import PLUGINS, write_study  # noqa: E402

from headsearch.pareto import hypervolume  # noqa: E402
from headsearch.search.rungs import EARLY_STOP_ATTR, EPOCHS_ATTR  # noqa: E402
from headsearch.study import load_points_from  # noqa: E402


def _run(folder: Path, name: str, workers: int, storage: str, tracking_uri: str, trials: int, model: Path | None,
         env: dict[str, str]) -> tuple[dict[tuple, tuple[bool, int]], float, int]:
    """Each trial's parameters -> (stopped, epochs trained); the hypervolume (accuracy x FLOPs ratio) of the completed;
    the most trials that ran at one moment."""
    folder.mkdir()
    study = write_study(folder, [{"name": "progress-probe", "n_trials": trials}], name=name, sampler="random",
                        storage=storage, tracking_uri=tracking_uri, objectives=["accuracy", "flops"])
    if model is not None:  # the dense model the first run's worker trained
        shutil.copytree(model, folder / "run" / "model")
    procs = [subprocess.Popen([sys.executable, "-m", "headsearch", "worker", str(study), "--storage", storage], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(workers)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            sys.exit(err[-2000:])
    got = optuna.load_study(study_name=f"{name}:progress-probe", storage=storage).get_trials(deepcopy=False)
    fates = {tuple(sorted(t.params.items())): (t.state == TrialState.PRUNED, int(t.user_attrs.get(EPOCHS_ATTR, 0)))
             for t in got if t.state == TrialState.COMPLETE or EARLY_STOP_ATTR in t.user_attrs}
    spans = [(t.datetime_start, t.datetime_complete) for t in got if t.datetime_start and t.datetime_complete]
    overlap = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    return fates, hypervolume(load_points_from(storage, name, ["progress-probe"])), overlap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epoch-s", type=float, default=0.3)
    args = parser.parse_args(argv)
    reason = missing_postgres()
    if reason:
        sys.exit(reason)
    env = {**os.environ, "PYTHONPATH": str(PLUGINS), "PROBE_EPOCH_S": str(args.epoch_s)}
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as storage, \
            mlflow_server(create_database(storage, "mlflow"), Path(tmp) / "mlflow") as (tracking_uri, _):
        base = _run(Path(tmp) / "w1", "w1", 1, storage, tracking_uri, args.trials, None, env)
        model = Path(tmp) / "w1" / "run" / "model"
        rows = [("1 worker", base)]
        for r in range(args.repeats):
            rows.append((f"4 workers #{r + 1}", _run(Path(tmp) / f"w4r{r}", f"w4r{r}", 4, storage, tracking_uri,
                                                     args.trials, model, env)))
    print(f"{args.trials} progress-probe trials, mo_asha (eta 4, rungs at epochs 1 and 4), {args.epoch_s} s per epoch")
    print(f"{'run':<14} {'at once':>7} {'stopped':>7} {'epochs':>6} {'fates differ':>12} {'HV acc x FLOPs':>14}")
    for label, (fates, hv, overlap) in rows:
        differ = sum(1 for p, (stopped, _) in fates.items() if p in base[0] and base[0][p][0] != stopped)
        print(f"{label:<14} {overlap:>7} {sum(s for s, _ in fates.values()):>7} {sum(e for _, e in fates.values()):>6} "
              f"{differ:>12} {hv:>14.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
