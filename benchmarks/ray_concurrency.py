"""Wall time of a fixed study under the Ray Tune driver, one trial at a time vs several at once.

    python benchmarks/ray_concurrency.py studies/quickstart.yaml --strategies random,static_gates --repeats 3

The dense model is trained once; every run is a fresh run folder with a copy of it and the same seed,
so each runs the same trials. Runs alternate (1, 2, 2, 1, ...) on one local Ray instance, so drift of
the machine hits both settings alike; prints each run's wall time, the medians and their ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import ray

from headsearch.study import build_context, run_study
from headsearch.study_config import load_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study")
    parser.add_argument("--strategies", default="random,static_gates", help="comma-separated subset of the study's")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting")
    parser.add_argument("--concurrent", default="1,2", help="settings of --max-concurrent to compare")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    args = parser.parse_args()
    names = args.strategies.split(",")
    settings = [int(c) for c in args.concurrent.split(",")]
    base = load_study(args.study)
    base = base.model_copy(update={"strategies": tuple(s for s in base.strategies if s.name in names)})
    work = Path(tempfile.mkdtemp(prefix="ray-concurrency-"))
    seeded = base.model_copy(update={"output": work / "seed"})
    build_context(seeded)  # trains the dense model once
    print(f"study {base.name}: {', '.join(f'{s.name} x{s.n_trials}' for s in base.strategies)}; Ray with {args.cpus} CPUs")
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    times: dict[int, list[float]] = {c: [] for c in settings}
    for r in range(args.repeats):
        for c in settings if r % 2 == 0 else reversed(settings):
            out = work / f"c{c}-{r}"
            shutil.copytree(work / "seed" / "model", out / "model")
            config = base.model_copy(update={"output": out, "tracking_uri": f"sqlite:///{work / 'mlflow.db'}"})
            start = time.perf_counter()
            run_study(config, driver="ray", max_concurrent=c, progress=False, echo=lambda *_: None)
            times[c].append(time.perf_counter() - start)
            print(f"run {r}: max_concurrent {c}: {times[c][-1]:.1f} s")
    ray.shutdown()
    medians = {c: statistics.median(t) for c, t in times.items()}
    for c, m in medians.items():
        print(f"max_concurrent {c}: median {m:.1f} s over {len(times[c])} runs")
    first = settings[0]
    for c in settings[1:]:
        print(f"speedup of {c} concurrent over {first}: {medians[first] / medians[c]:.2f}x")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
