"""Wall time of one study of cheap trials on a Ray cluster of 1 node and of 3 nodes (a head and two workers, one CPU
each, all on this machine, on loopback), with a PostgreSQL storage and an MLflow server backed by PostgreSQL, as
``tests/test_cluster.py`` runs them (``tests/local_services.py``). The same study (the tiny built-in model of the
tests, ``random``, ``--trials`` trials) runs from scratch on each cluster, alternating, ``--repeats`` times; the
dense model is trained first and reused, so the figure is the trials' wall time. Nothing is asserted.

    python benchmarks/cluster_nodes.py --trials 24 --repeats 2
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from local_services import create_database, missing_postgres, mlflow_server, postgres_server, ray_cluster  # noqa: E402
from tiny_study import write_study  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    reason = missing_postgres()
    if reason:
        sys.exit(reason)
    walls: dict[int, list[float]] = {1: [], 3: []}
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as storage, \
            mlflow_server(create_database(storage, "mlflow"), Path(tmp) / "mlflow") as (tracking_uri, _):
        model = Path(tmp) / "model"
        for r in range(args.repeats):
            for nodes in (1, 3) if r % 2 == 0 else (3, 1):
                folder = Path(tmp) / f"study-{nodes}-{r}"
                folder.mkdir()
                name = f"nodes{nodes}r{r}"
                study = write_study(folder, [{"name": "random", "n_trials": args.trials}], name=name, sampler="random",
                                    storage=storage, tracking_uri=tracking_uri, output=str(folder / "run"))
                with ray_cluster(workers=nodes - 1) as (address, env):
                    if model.is_dir():  # the dense model trained by the first run, reused
                        shutil.copytree(model, folder / "run" / "model")
                    start = time.perf_counter()
                    done = subprocess.run([sys.executable, "-m", "headsearch", "run", str(study), "--driver", "ray",
                                           "--address", address], env=env, capture_output=True, text=True)
                    wall = time.perf_counter() - start
                if done.returncode:
                    sys.exit(done.stderr[-2000:])
                if not model.is_dir():
                    shutil.copytree(folder / "run" / "model", model)
                    continue  # the first run also trained the dense model: not timed
                walls[nodes].append(wall)
                print(f"{nodes} node(s), repeat {r}: {wall:.1f} s", flush=True)
    m1, m3 = statistics.median(walls[1]), statistics.median(walls[3])
    print(f"\n{args.trials} random trials of the tiny built-in model: 1 node {m1:.1f} s, 3 nodes {m3:.1f} s "
          f"(medians of {len(walls[1])} and {len(walls[3])}; {m1 / m3:.2f}x), on one 2-core machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
