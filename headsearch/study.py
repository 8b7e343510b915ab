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
import socket
import statistics
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from filelock import FileLock
from optuna.trial import TrialState

from headsearch._fs import atomic_folder, removed_on_error
from headsearch.cost import HardwareProfile, table_cache
from headsearch.cost.latency_table import LatencyTable, measure_table
from headsearch.data.text import TextDataset
from headsearch.errors import HeadsearchError, Terminated
from headsearch.heads import HeadConfig
from headsearch.models.builtin import BuiltinConfig
from headsearch.models.headed import HeadedModel
from headsearch.models.recipe import BaseModelRecipe, base_model, check_source, default_learning_rate
from headsearch.models.text_classifier import TextClassifier
from headsearch.models.training import TrainConfig
from headsearch.objectives import Evaluator, Objectives
from headsearch.pareto import Point
from headsearch.report.summary import TimeSpent
from headsearch.search.drivers import driver_for
from headsearch.search.early_stopping import Rungs
from headsearch.search.job import Driver, StrategyJob
from headsearch.search.optuna_driver import NO_STOPPING, check_new_studies, open_study, optuna_study_name
from headsearch.search.rungs import EARLY_STOP_ATTR
from headsearch.search.storage import optuna_storage
from headsearch.search.tracking import Tracker
from headsearch.search.trial import TIME_ATTR, TrialRecord, TrialRunner
from headsearch.searchspace import SearchSpace, load_space
from headsearch.strategies.base import StudyContext
from headsearch.strategies.registry import get as get_strategy
from headsearch.study_config import StrategyRun, StudyConfig

RUN_FILE = "run.json"
STUDY_FILE = "study.yaml"  # run-folder file: the validated study
TABLE_FILE = "latency_table.json"  # run-folder file: the latency table of the study's profile
TRIAL_MODELS = "trial_models"  # run-folder subfolder of trials that changed weights


def experiment_name(config: StudyConfig) -> str:
    """The study's MLflow experiment."""
    return f"headsearch/{config.name}"


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
    profile = HardwareProfile(device=hw.device, runtime=hw.runtime, threads=hw.threads, batch_size=hw.batch_size,
                              seq_len=hw.seq_len)
    table = _latency_table(config.out_dir, dense.model, profile) if hw.latency == "table" else None
    # every driver and worker orders the search split's rows alike; whether a row rung stops a trial is the run's rule
    row_levels = config.early_stopping.rungs().row_levels(len(search))
    evaluator = Evaluator(dense, search, profile, repeats=hw.repeats, table=table, check_every=hw.table_check_every,
                          row_levels=row_levels, seed=config.seed)
    return StudyContext(dense, search, scoring, hw.seq_len, config.seed, train=train), evaluator


def _latency_table(out: Path, model: HeadedModel, profile: HardwareProfile) -> LatencyTable:
    """The run folder's latency table for this profile and model shape: taken from the cross-study cache
    (``headsearch.cost.table_cache``) or measured once (workers and Ray trials started together wait for the
    first), then read."""
    path = out / TABLE_FILE
    shape = {"class": type(model).__name__, **asdict(model.shape)}
    with FileLock(out / ".table.lock"):
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved["profile"] == profile.to_dict() and saved.get("shape") == shape:
                return LatencyTable.from_dict(saved)
        cache_key = table_cache.key(shape, profile)
        cached = table_cache.read(cache_key)
        if cached is not None:
            table = LatencyTable.from_dict(cached)
        else:
            table = measure_table(model, profile)
            table_cache.write(cache_key, table.to_dict())
        tmp = path.with_suffix(f".{os.getpid()}")
        tmp.write_text(json.dumps({**table.to_dict(), "shape": shape}, indent=1) + "\n")
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
    instance or the cluster at ``address``, ``max_concurrent`` at once (``headsearch.search.drivers``).
    Either driver stops trials that train early by the study's ``early_stopping`` rule, unless
    ``early_stopping`` is False here."""
    chosen = driver_for(driver, address=address, max_concurrent=max_concurrent)
    run = prepare(config, n_trials=n_trials, resume=resume or worker, progress=progress, echo=echo,
                  driver=chosen.name, early_stopping=early_stopping)
    with _sigterm_interrupts(), chosen.session(), run.tracker.run(config.name, tags=run.tags) as parent_id:
        run.tracker.log(parent_id, params={"study": json.dumps(config.model_dump(mode="json"))},
                        metrics={f"dense_{k}": v for k, v in run.dense.to_dict().items() if isinstance(v, int | float)})
        run.info["mlflow_runs"] = [parent_id]
        _write_run_info(config.out_dir, run.info)  # from the first trial on, show and export can read the run
        for strategy in run.strategies:
            run_strategy(run, strategy, chosen, parent_id, n_trials=n_trials, echo=echo)
    return finish(run)


@dataclass
class StudyRun:
    """One invocation of a study, as ``prepare`` checked and built it: shared by every strategy's run."""

    config: StudyConfig
    strategies: list[StrategyRun]
    spaces: dict[str, SearchSpace]
    storage: str
    rungs: Rungs
    context: StudyContext
    evaluator: Evaluator
    dense: Objectives
    tracker: Tracker
    hardware: dict[str, Any]
    tags: dict[str, str]
    info: dict[str, Any]  # run.json
    progress: bool


def prepare(config: StudyConfig, *, n_trials: int | None, resume: bool, progress: bool, echo, driver: str,
            early_stopping: bool) -> StudyRun:
    """Check everything that can be checked before anything is written or trained (strategies, search spaces,
    storage, data, model source), then write the study, build the context and score the dense model."""
    if n_trials is not None and n_trials < 1:
        raise HeadsearchError(f"n_trials must be at least 1 (got {n_trials}).")
    out = config.out_dir
    if not resume and ((out / RUN_FILE).exists() or (out / STUDY_FILE).exists()):
        raise HeadsearchError(f"{out} already holds a run; pass --resume to continue it or --out for a new folder.")
    infos = {s.name: get_strategy(s.name) for s in config.strategies}  # unknown names fail before any work
    spaces = {s.name: load_space(infos[s.name].cls.search_space, s.space) for s in config.strategies}
    storage = config.storage or f"sqlite:///{(out / 'optuna.db').resolve()}"
    if config.storage is not None or (out / "optuna.db").exists():
        optuna_storage(storage)  # a bad URI or an unreachable server: one line now, not after training
        if not resume:
            check_new_studies(storage, config.name, [s.name for s in config.strategies])
    rungs = config.early_stopping.rungs() if early_stopping else NO_STOPPING
    recipe = _recipe(config)
    check_source(recipe.source, recipe.head_unit)
    routed = [name for name, info in infos.items() if info.cls.per_input]
    if routed and config.hardware.runtime != "eager":
        raise HeadsearchError(f"{', '.join(routed)}: per-input head budgets run in eager PyTorch only; set "
                              f"hardware.runtime: eager, or leave them out of this study (runtime {config.hardware.runtime}).")
    data = load_data(config)
    # a fresh start that fails (a broken weight file, a full disk, Ctrl-C) leaves no run folder behind, so the
    # same command runs once the cause is fixed; a resumed run or a worker keeps what the folder held
    with contextlib.nullcontext() if resume else removed_on_error(out):
        out.mkdir(parents=True, exist_ok=True)
        (out / STUDY_FILE).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        context, evaluator = build_context(config, progress=progress, data=data)
        for info in infos.values():
            info.cls.check_model(context.dense.model)  # a strategy that cannot run on this model fails before any trial
        if "labels_matched" in context.dense.meta:
            echo(f"model: {config.model.source} as it is ({context.dense.meta.get('transformers_class')}), data labels "
                 f"matched {context.dense.meta['labels_matched']}")
        dense = evaluator.evaluate(HeadConfig.dense(context.num_layers, context.num_heads))
    echo(f"dense: accuracy {dense.accuracy:.4f} on {context.search.name}, {dense.flops / 1e6:.1f} MFLOPs, "
         f"{dense.latency_ms:.2f} ms")
    with FileLock(out / ".tracking.lock"):  # workers started together would race to create MLflow's tables
        tracker = Tracker(config.tracking_uri, experiment=experiment_name(config))
    for run_id in tracker.close_stale_runs():
        echo(f"MLflow run {run_id} of a killed process ended as FAILED")
    hardware = evaluator.profile.to_dict()
    if evaluator.table is not None:  # predicted and measured latencies never share a front
        hardware["latency"] = "table"
    info = {"name": config.name, "storage": storage, "strategies": [s.name for s in config.strategies],
            "objectives": list(config.objectives), "dense": dense.to_dict(), "profile": hardware,
            "tracking_uri": tracker.uri, "mlflow_runs": [], "latency_table_check": None,
            "search_rows": len(context.search)}
    return StudyRun(config, list(config.strategies), spaces, storage, rungs, context, evaluator, dense, tracker, hardware,
                    {"study": config.name, "hardware": json.dumps(hardware), "driver": driver}, info, progress)


def run_strategy(run: StudyRun, strategy: StrategyRun, driver: Driver, parent_id: str, *, n_trials: int | None,
                 echo) -> int:
    """One strategy's trials under ``driver``, logged under an MLflow run nested in ``parent_id``; returns how
    many ran here."""
    config, context = run.config, run.context
    started = time.monotonic()
    study = open_study(run.storage, config.name, strategy.name, config.objectives, config.sampler, config.seed)
    tags = {**run.tags, "strategy": strategy.name}
    with run.tracker.run(strategy.name, parent_run_id=parent_id, tags=tags) as strategy_id:
        log = TrialLog(run.tracker.uri, experiment_name(config), strategy_id, tuple(sorted(tags.items())))

        def local_runner() -> TrialRunner:
            _remember(study, run.evaluator)
            return _runner(config, strategy.name, context, run.evaluator, log)

        job = StrategyJob(study, run.spaces[strategy.name], n_trials or strategy.n_trials, tuple(config.objectives),
                          config.sampler, config.seed, run.storage, run.hardware, run.rungs, context.num_layers,
                          context.num_heads, local_runner=local_runner,
                          remote_runner=WorkerPlan(config, strategy.name, log),
                          on_ended=log, experiment_dir=config.out_dir / "ray", progress=run.progress)
        ran = driver.run(job)
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    stopped = sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)) if EARLY_STOP_ATTR in t.user_attrs)
    echo(f"{strategy.name}: {ran} trial(s) run now in {time.monotonic() - started:.0f} s, {len(study.trials)} in "
         f"storage, {failed} failed" + (f", {stopped} stopped early ({run.rungs.rule})" if stopped else ""))
    return ran


def finish(run: StudyRun) -> Path:
    """After every strategy: the latency table's check against measured trials (``hardware.latency: table``),
    recorded in run.json for ``headsearch show``; returns the run folder."""
    if run.evaluator.table is not None:
        errors = table_errors(load_points_from(run.storage, run.config.name, [s.name for s in run.strategies]))
        if errors:
            run.info["latency_table_check"] = {"checked_trials": len(errors),
                                               "median_relative_error": statistics.median(errors)}
            _write_run_info(run.config.out_dir, run.info)
    return run.config.out_dir


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


@dataclass
class TrialLog:
    """Logs each trial as an MLflow run nested under its strategy's run: parameters, objectives, the
    candidate's figures and files. Picklable (Ray pickles it into its workers and with its callbacks): the
    MLflow client is made on first use in the process that logs, and never pickled."""

    tracking_uri: str
    experiment: str
    strategy_run_id: str
    tags: tuple[tuple[str, str], ...]
    _tracker: Tracker | None = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tracker": None}

    @property
    def tracker(self) -> Tracker:
        if self._tracker is None:
            self._tracker = Tracker(self.tracking_uri, experiment=self.experiment)
        return self._tracker

    def __call__(self, record: TrialRecord) -> None:
        tags = dict(self.tags)
        with self.tracker.run(f"{tags['strategy']}-{record.number}", parent_run_id=self.strategy_run_id,
                              tags={**tags, "trial": str(record.number), "status": record.status},
                              end_status="KILLED" if record.killed else "FINISHED") as trial_id:
            metrics = {k: v for k, v in (record.objectives.to_dict() if record.objectives else {}).items()
                       if isinstance(v, int | float)}
            metrics |= {f"info.{k}": v for k, v in record.info.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            metrics |= {f"time.{k}": v for k, v in record.time.items()}
            artifacts = {"head_config.json": record.head_config.to_json()} if record.head_config else {}
            if record.info:
                artifacts["candidate_info.json"] = json.dumps(record.info, indent=2)
            artifacts |= record.artifacts
            self.tracker.log(trial_id, params=record.params, metrics=metrics, artifacts=artifacts,
                             tags={"error": record.error} if record.error else {})


@dataclass(frozen=True)
class WorkerPlan:
    """How a Ray worker process builds a strategy's ``TrialRunner`` (picklable; called in the worker): the
    study, the strategy, and the MLflow logger of its trials. Built once per process (``WORKER_RUNNERS``):
    Ray reuses its worker processes across trials."""

    config: StudyConfig
    strategy: str
    log: TrialLog

    def __call__(self) -> TrialRunner:
        model = self.config.out_dir.resolve() / "model"
        if not model.is_dir():  # a node of a cluster that does not mount the driver's run folder
            raise HeadsearchError(f"{model}: not found on Ray node {socket.gethostname()}; every node of a cluster must "
                                  "see the run folder (--out) at the driver's path, on a shared file system.")
        return WORKER_RUNNERS.runner(self)


class WorkerRunners:
    """The runners this process built from ``WorkerPlan``s, by run folder, strategy and MLflow run; the study
    context (data, dense model from the run folder, evaluator) once per run folder and study."""

    def __init__(self) -> None:
        self._contexts: dict[Path, tuple[StudyConfig, StudyContext, Evaluator]] = {}
        self._runners: dict[tuple[Path, str, str], TrialRunner] = {}

    def runner(self, plan: WorkerPlan) -> TrialRunner:
        folder = plan.config.out_dir.resolve()
        key = (folder, plan.strategy, plan.log.strategy_run_id)
        if key not in self._runners:
            known = self._contexts.get(folder)
            if known is None or known[0] != plan.config:
                known = self._contexts[folder] = (plan.config, *build_context(plan.config, progress=False))
            _, context, evaluator = known
            self._runners[key] = _runner(plan.config, plan.strategy, context, evaluator, plan.log)
        return self._runners[key]


WORKER_RUNNERS = WorkerRunners()  # this process's; only Ray workers fill it


def _runner(config: StudyConfig, strategy: str, context: StudyContext, evaluator: Evaluator,
            log: Callable[[TrialRecord], None]) -> TrialRunner:
    """The strategy, prepared on ``context``, with what its trials are scored, logged and saved by."""
    chosen = get_strategy(strategy).cls()
    chosen.prepare(context)
    latency = any(o in ("latency_ms", "speedup") for o in config.objectives)  # a trial's cost at a rung, as the study prices it
    return TrialRunner(chosen, context, evaluator.evaluate_candidate, config.objectives, on_trial=log,
                       save_model=_TrialModels(config.out_dir, strategy).save,
                       price=functools.partial(evaluator.cost_ratio, latency=latency), spent=evaluator.spent)


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


def _strategy_studies(storage: str, study: str, strategies: list[str]) -> Iterator[tuple[str, optuna.Study]]:
    """The Optuna study of each strategy that has one in ``storage`` (a run stopped before a strategy began
    has none for it)."""
    opened = optuna_storage(storage)
    existing = set(optuna.get_all_study_names(opened))
    for name in strategies:
        if optuna_study_name(study, name) in existing:
            yield name, optuna.load_study(study_name=optuna_study_name(study, name), storage=opened)


def load_time_spent(run_dir: str | Path) -> list[TimeSpent]:
    """Where each strategy's trials of a run spent their time (``TimeSpent``), from the storage's trial records;
    trials recorded before these records existed count for their wall time only."""
    info = load_run(run_dir)
    out = []
    for name, study in _strategy_studies(info["storage"], info["name"], info["strategies"]):
        ended = [t for t in study.get_trials(deepcopy=False) if t.datetime_complete is not None]
        times = [t.user_attrs.get(TIME_ATTR, {}) for t in ended]
        stopped = sum("rows" in t.user_attrs.get(EARLY_STOP_ATTR, {}) for t in ended)  # a row rung's report
        scored = stopped + sum("objectives" in t.user_attrs for t in ended)
        out.append(TimeSpent(
            name, len(ended), stopped, sum((t.datetime_complete - t.datetime_start).total_seconds() for t in ended),
            *(sum(x.get(k, 0.0) for x in times) for k in ("propose_s", "scoring_s", "latency_s")),
            sum(x.get("rows_scored", 0) for x in times), scored * info.get("search_rows", 0)))
    return out


def load_points_from(storage: str, study: str, strategies: list[str]) -> list[Point]:
    """Every completed trial of ``study``'s ``strategies`` in ``storage`` as a Pareto point."""
    points = []
    for name, optuna_study in _strategy_studies(storage, study, strategies):
        for t in optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            obj = t.user_attrs["objectives"]
            # latency ratio from the dense timing taken in the same trial, interleaved
            points.append(Point(name, t.number, obj["accuracy"], obj["flops_ratio"], obj["latency_ms"] / obj["dense_latency_ms"],
                                obj, t.user_attrs["head_config"], dict(t.params), t.user_attrs.get("model_dir"),
                                t.user_attrs.get("info", {})))
    return points
