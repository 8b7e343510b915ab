"""One study end to end: data, dense base model, per-strategy Optuna studies, MLflow runs, run folder.

The run folder (``StudyConfig.out_dir``) holds ``study.yaml`` (the validated config), ``model/`` (the
dense checkpoint), ``optuna.db`` (every trial), ``run.json`` (dense figures, storage, MLflow run id)
and the report written by ``headsearch.report``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import statistics
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import yaml
from filelock import FileLock
from optuna.trial import TrialState

from headsearch._fs import atomic_folder
from headsearch.cost import HardwareProfile
from headsearch.cost.latency_table import LatencyTable, measure_table
from headsearch.data.text import TextDataset
from headsearch.errors import HeadsearchError, Terminated
from headsearch.heads import HeadConfig
from headsearch.models.builtin import BuiltinConfig
from headsearch.models.classifier import HeadedClassifier
from headsearch.models.headed import HeadedModel
from headsearch.models.recipe import BaseModelRecipe, base_model, check_source, default_learning_rate
from headsearch.models.text_classifier import TextClassifier
from headsearch.models.training import TrainConfig
from headsearch.objectives import Evaluator, Objectives
from headsearch.pareto import Point
from headsearch.search.optuna_driver import NO_STOPPING, check_new_studies, open_study, optuna_study_name, run_trials
from headsearch.search.rungs import EARLY_STOP_ATTR
from headsearch.search.storage import optuna_storage
from headsearch.search.tracking import Tracker
from headsearch.search.trial import TrialRecord, TrialRunner
from headsearch.searchspace import load_space
from headsearch.strategies.base import StudyContext
from headsearch.strategies.registry import get as get_strategy
from headsearch.study_config import StudyConfig

RUN_FILE = "run.json"
STUDY_FILE = "study.yaml"  # run-folder file: the validated study
TABLE_FILE = "latency_table.json"  # run-folder file: the latency table of the study's profile
TRIAL_MODELS = "trial_models"  # run-folder subfolder of trials that changed weights


def _recipe(config: StudyConfig) -> BaseModelRecipe:
    m = config.model
    train = None
    if m.train is not None:
        lr = m.train.learning_rate or default_learning_rate(m.source)
        train = TrainConfig(epochs=m.train.epochs, batch_size=m.train.batch_size, seed=config.seed,
                            freeze_encoder=m.train.freeze_encoder, learning_rate=lr)
    recipe = BaseModelRecipe(source=m.source, data=config.data.describe(), max_length=m.max_length, seed=config.seed,
                             builtin=BuiltinConfig(**m.builtin.model_dump()), head_unit=m.head_unit, train=train)
    if not recipe.trains and "train" in m.model_fields_set and m.train is not None:
        raise HeadsearchError(f"model.train: {m.source} is a fine-tuned classifier, searched as it is; remove model.train.")
    return recipe


def load_data(config: StudyConfig) -> tuple[TextDataset, TextDataset]:
    """The train rows and the rows candidates are scored on. A test file the study names is read too, so that
    every split fails (one line: file, line, column) before a run writes anything."""
    data = config.data
    source = data.source(config.seed)
    train = source.load("train")
    train_rows = config.model.train.train_rows if config.model.train is not None else None
    if train_rows is not None:
        train = train.sample(train_rows, seed=config.seed)
    search = source.load(data.search_split)
    if data.search_rows is not None:
        search = search.head(data.search_rows)
    if data.test is not None and data.search_split != "test":
        source.load("test")
    return train, search


def build_context(config: StudyConfig, *, progress: bool = True,
                  data: tuple[TextDataset, TextDataset] | None = None) -> tuple[StudyContext, Evaluator]:
    """Data (``data``: already read by ``load_data``), the dense model (trained once, or the user's classifier
    copied once, then reused from the run folder) and the candidate evaluator. A user's classifier keeps its
    label order: the data is matched to it."""
    train, search = data or load_data(config)
    recipe = _recipe(config)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(config.out_dir / ".model.lock"):  # workers started together: one trains, the others then load
        dense = base_model(recipe, train, config.out_dir / "model", progress=progress)
    if not recipe.trains:
        (train, how), (search, _) = train.aligned_to(dense.label_names), search.aligned_to(dense.label_names)
        dense.meta["labels_matched"] = how
    scoring = train.sample(config.data.scoring_rows, seed=config.seed + 1)
    hw = config.hardware  # a seq_len beyond the model's positions fails at the dense evaluation, before any trial
    profile = HardwareProfile(device=hw.device, threads=hw.threads, batch_size=hw.batch_size, seq_len=hw.seq_len)
    table = _latency_table(config.out_dir, dense.model, profile) if hw.latency == "table" else None
    evaluator = Evaluator(dense, search, profile, repeats=hw.repeats, table=table, check_every=hw.table_check_every)
    return StudyContext(dense, search, scoring, hw.seq_len, config.seed, train=train), evaluator


def _latency_table(out: Path, model: HeadedModel, profile: HardwareProfile) -> LatencyTable:
    """The run folder's latency table for this profile and model shape: measured once (workers and Ray
    trials started together wait for the first), then read."""
    if not isinstance(model, HeadedClassifier):
        raise HeadsearchError("hardware.latency: table times headsearch's own encoder layer by layer; for a "
                              "Hugging Face model use latency: measured.")
    path = out / TABLE_FILE
    with FileLock(out / ".table.lock"):
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved["profile"] == profile.to_dict() and saved["spec"] == model.spec.to_dict():
                return LatencyTable.from_dict(saved)
        table = measure_table(model, profile)
        tmp = path.with_suffix(f".{os.getpid()}")
        tmp.write_text(json.dumps({**table.to_dict(), "spec": model.spec.to_dict()}, indent=1) + "\n")
        os.replace(tmp, path)
    return table


def table_errors(points: list[Point]) -> list[float]:
    """Relative error of the table's latency ratio against the ratio measured on the same trial, for every
    trial whose latency was predicted and checked (``hardware.latency: table``)."""
    return [abs(p.latency_ratio - p.objectives["checked_latency_ratio"]) / p.objectives["checked_latency_ratio"]
            for p in points if p.objectives.get("checked_latency_ratio")]


def run_study(config: StudyConfig, *, n_trials: int | None = None, resume: bool = False, progress: bool = True,
              echo=print, worker: bool = False, driver: str = "optuna", address: str | None = None,
              max_concurrent: int | None = None, early_stopping: bool = True) -> Path:
    """Run every strategy of ``config``; returns the run folder.

    ``worker``: one of several processes sharing the study's storage (``headsearch worker``): it joins
    whatever the storage holds and runs trials until every strategy has its ``n_trials`` finished or
    running, alongside the others. ``driver="ray"``: the trials run as Ray Tune trials on a local Ray
    instance or the cluster at ``address``, ``max_concurrent`` at once (``headsearch.search.ray_driver``).
    Either driver stops trials that train early by the study's ``early_stopping`` rule, unless
    ``early_stopping`` is False here."""
    if driver not in DRIVERS:
        raise HeadsearchError(f"--driver {driver!r} is not known; use one of {', '.join(DRIVERS)}.")
    if n_trials is not None and n_trials < 1:
        raise HeadsearchError(f"n_trials must be at least 1 (got {n_trials}).")
    out = config.out_dir
    resume = resume or worker
    if not resume and ((out / RUN_FILE).exists() or (out / STUDY_FILE).exists()):
        raise HeadsearchError(f"{out} already holds a run; pass --resume to continue it or --out for a new folder.")
    # everything that can be checked is checked before anything is written or trained
    strategies = [(s, get_strategy(s.name)) for s in config.strategies]  # unknown names fail before any work
    spaces = {s.name: load_space(info.cls.search_space, s.space) for s, info in strategies}
    storage = config.storage or f"sqlite:///{(out / 'optuna.db').resolve()}"
    if config.storage is not None or (out / "optuna.db").exists():
        optuna_storage(storage)  # a bad URI or an unreachable server: one line now, not after training
        if not resume:
            check_new_studies(storage, config.name, [s.name for s, _ in strategies])
    rungs = config.early_stopping.rungs() if early_stopping else NO_STOPPING
    recipe = _recipe(config)
    check_source(recipe.source, recipe.head_unit)
    data = load_data(config)
    out.mkdir(parents=True, exist_ok=True)
    (out / STUDY_FILE).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    context, evaluator = build_context(config, progress=progress, data=data)
    for _, info in strategies:
        info.cls.check_model(context.dense.model)  # a strategy that cannot run on this model fails before any trial
    if "labels_matched" in context.dense.meta:
        echo(f"model: {config.model.source} as it is ({context.dense.meta.get('transformers_class')}), data labels "
             f"matched {context.dense.meta['labels_matched']}")
    dense_config = HeadConfig.dense(context.num_layers, context.num_heads)
    dense_obj = evaluator.evaluate(dense_config)
    echo(f"dense: accuracy {dense_obj.accuracy:.4f} on {context.search.name}, {dense_obj.flops / 1e6:.1f} MFLOPs, "
         f"{dense_obj.latency_ms:.2f} ms")
    with FileLock(out / ".tracking.lock"):  # workers started together would race to create MLflow's tables
        tracker = Tracker(config.tracking_uri, experiment=f"headsearch/{config.name}")
    for run_id in tracker.close_stale_runs():
        echo(f"MLflow run {run_id} of a killed process ended as FAILED")
    hardware = evaluator.profile.to_dict()
    if evaluator.table is not None:  # predicted and measured latencies never share a front
        hardware["latency"] = "table"
    tags = {"study": config.name, "hardware": json.dumps(hardware), "driver": driver}
    with _sigterm_interrupts(), _driver_session(driver, address), tracker.run(config.name, tags=tags) as parent_id:
        tracker.log(parent_id, params={"study": json.dumps(config.model_dump(mode="json"))},
                    metrics={f"dense_{k}": v for k, v in dense_obj.to_dict().items() if isinstance(v, int | float)})
        run_info = {
            "name": config.name,
            "storage": storage,
            "strategies": [s.name for s, _ in strategies],
            "objectives": list(config.objectives),
            "dense": dense_obj.to_dict(),
            "profile": hardware,
            "tracking_uri": tracker.uri,
            "mlflow_runs": [parent_id],
            "latency_table_check": None,
        }
        _write_run_info(out, run_info)  # from the first trial on, show and export can read the run
        for run, _ in strategies:
            started = time.monotonic()
            study = open_study(storage, config.name, run.name, config.objectives, config.sampler, config.seed)
            n = n_trials or run.n_trials
            strategy_tags = {**tags, "strategy": run.name}
            with tracker.run(run.name, parent_run_id=parent_id, tags=strategy_tags) as strategy_id:
                if driver == "ray":
                    from headsearch.search.ray_driver import run_ray_trials

                    runner = functools.partial(_worker_runner, json.dumps(config.model_dump(mode="json")), run.name,
                                               tracker.uri, strategy_id, json.dumps(strategy_tags))
                    ran = run_ray_trials(study, runner, spaces[run.name], objectives=config.objectives,
                                         sampler=config.sampler, seed=config.seed, n_trials=n,
                                         num_layers=context.num_layers, num_heads=context.num_heads, hardware=hardware,
                                         storage=storage, experiment_dir=out / "ray", max_concurrent=max_concurrent,
                                         rungs=rungs, progress=progress,
                                         on_ended=trial_logger(tracker, strategy_id, strategy_tags))
                else:
                    _remember(study, evaluator)
                    runner = _runner(config, run.name, context, evaluator, trial_logger(tracker, strategy_id, strategy_tags))
                    ran = run_trials(study, runner, spaces[run.name], n_trials=n, progress=progress, hardware=hardware,
                                     rungs=rungs)
                failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
                stopped = sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
                              if EARLY_STOP_ATTR in t.user_attrs)
                echo(f"{run.name}: {ran} trial(s) run now in {time.monotonic() - started:.0f} s, {len(study.trials)} in "
                     f"storage, {failed} failed" + (f", {stopped} stopped early ({rungs.rule})" if stopped else ""))
    if evaluator.table is not None:
        errors = table_errors(load_points_from(storage, config.name, [s.name for s, _ in strategies]))
        if errors:  # `headsearch show` prints it
            run_info["latency_table_check"] = {"checked_trials": len(errors), "median_relative_error": statistics.median(errors)}
            _write_run_info(out, run_info)
    return out


def _write_run_info(out: Path, info: dict[str, Any]) -> None:
    """Write ``run.json``, keeping the MLflow runs (and table check) that earlier invocations and other
    workers recorded there; replaced whole, never half-written."""
    with FileLock(out / ".run.lock"):
        if (out / RUN_FILE).is_file():
            before = json.loads((out / RUN_FILE).read_text())
            info["mlflow_runs"] = list(dict.fromkeys([*before.get("mlflow_runs", []), *info["mlflow_runs"]]))
            info["latency_table_check"] = info.get("latency_table_check") or before.get("latency_table_check")
        tmp = out / f".{RUN_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(tmp, out / RUN_FILE)


DRIVERS = ("optuna", "ray")


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the run as Ctrl-C does: the running trial is failed with the reason and enqueued again,
    MLflow runs end KILLED. (Only the main thread may set a handler; elsewhere SIGTERM keeps its default.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _driver_session(driver: str, address: str | None) -> contextlib.AbstractContextManager:
    if driver != "ray":
        return contextlib.nullcontext()
    from headsearch.search.ray_driver import ray_instance

    return ray_instance(address)


def trial_logger(tracker: Tracker, strategy_id: str, tags: dict[str, str]) -> Callable[[TrialRecord], None]:
    """Logs each trial as an MLflow run nested under its strategy's run: parameters, objectives, the
    candidate's figures and files."""
    def log(record: TrialRecord) -> None:
        with tracker.run(f"{tags['strategy']}-{record.number}", parent_run_id=strategy_id,
                         tags={**tags, "trial": str(record.number), "status": record.status},
                         end_status="KILLED" if record.killed else "FINISHED") as trial_id:
            metrics = {k: v for k, v in (record.objectives.to_dict() if record.objectives else {}).items()
                       if isinstance(v, int | float)}
            metrics |= {f"info.{k}": v for k, v in record.info.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            artifacts = {"head_config.json": record.head_config.to_json()} if record.head_config else {}
            if record.info:
                artifacts["candidate_info.json"] = json.dumps(record.info, indent=2)
            artifacts |= record.artifacts
            tracker.log(trial_id, params=record.params, metrics=metrics, artifacts=artifacts,
                        tags={"error": record.error} if record.error else {})

    return log


@functools.cache
def _worker_context(config_json: str) -> tuple[StudyContext, Evaluator]:
    return build_context(StudyConfig.model_validate(json.loads(config_json)), progress=False)


@functools.cache
def _worker_runner(config_json: str, strategy: str, tracking_uri: str, strategy_id: str, tags_json: str) -> TrialRunner:
    """The ``TrialRunner`` of a Ray worker process, built once per process and strategy: data and the
    dense model from the run folder, the prepared strategy, MLflow logging under the strategy's run."""
    config = StudyConfig.model_validate(json.loads(config_json))
    context, evaluator = _worker_context(config_json)
    tracker = Tracker(tracking_uri, experiment=f"headsearch/{config.name}")
    return _runner(config, strategy, context, evaluator, trial_logger(tracker, strategy_id, json.loads(tags_json)))


def _runner(config: StudyConfig, strategy: str, context: StudyContext, evaluator: Evaluator,
            log: Callable[[TrialRecord], None]) -> TrialRunner:
    """The strategy, prepared on ``context``, with what its trials are scored, logged and saved by."""
    chosen = get_strategy(strategy).cls()
    chosen.prepare(context)
    latency = any(o in ("latency_ms", "speedup") for o in config.objectives)  # a trial's cost at a rung, as the study prices it
    return TrialRunner(chosen, context, evaluator.evaluate_candidate, config.objectives, on_trial=log,
                       save_model=_TrialModels(config.out_dir, strategy).save,
                       price=functools.partial(evaluator.cost_ratio, latency=latency))


class _TrialModels:
    """Keeps trials' own weights in the run folder, once per model object (trials that share a checkpoint
    share its folder); ``save`` returns the path relative to the run folder."""

    def __init__(self, out: Path, strategy: str):
        self.out, self.strategy = out, strategy
        # weak references: a recovered model is saved and dropped; a shared checkpoint stays alive in the cache
        self._saved: dict[int, tuple[weakref.ref, str]] = {}

    def save(self, number: int, clf: TextClassifier) -> str:
        known = self._saved.get(id(clf))
        if known is None or known[0]() is not clf:  # an id can be reused once its model is gone
            relative = (Path(TRIAL_MODELS) / f"{self.strategy}-{number}").as_posix()
            with atomic_folder(self.out / relative) as tmp:
                clf.save(tmp)
            known = self._saved[id(clf)] = (weakref.ref(clf), relative)
        return known[1]


def _remember(study: optuna.Study, evaluator: Evaluator) -> None:
    """Seed the evaluator's memo with configurations this storage already evaluated (a resumed study).
    Trials with their own weights are skipped: their objectives are not those of the pruned dense model."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if "head_config" in t.user_attrs and "objectives" in t.user_attrs and "model_dir" not in t.user_attrs:
            evaluator.remember(HeadConfig.from_dict(t.user_attrs["head_config"]), Objectives(**t.user_attrs["objectives"]))


def load_run(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise HeadsearchError(f"{run_dir}: no {RUN_FILE}; not a headsearch run folder (made by `headsearch run`).")
    return json.loads((run_dir / RUN_FILE).read_text())


def load_points(run_dir: str | Path) -> list[Point]:
    """Every completed trial of a run as a Pareto point."""
    info = load_run(run_dir)
    return load_points_from(info["storage"], info["name"], info["strategies"])


def load_points_from(storage: str, study: str, strategies: list[str]) -> list[Point]:
    """Every completed trial of ``study``'s ``strategies`` in ``storage`` as a Pareto point."""
    points = []
    for name in strategies:
        optuna_study = optuna.load_study(study_name=optuna_study_name(study, name), storage=optuna_storage(storage))
        for t in optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            obj = t.user_attrs["objectives"]
            # latency ratio from the dense timing taken in the same trial, interleaved
            points.append(Point(name, t.number, obj["accuracy"], obj["flops_ratio"], obj["latency_ms"] / obj["dense_latency_ms"],
                                obj, t.user_attrs["head_config"], dict(t.params), t.user_attrs.get("model_dir"),
                                t.user_attrs.get("info", {})))
    return points
