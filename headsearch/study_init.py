"""``headsearch init``: a ready study YAML for the user's model folder and data file.

The model folder is checked (a supported family, a ``*ForSequenceClassification`` head, whole weights), the data's
columns are detected or taken as named, and its labels are matched to the model's ``id2label`` before
anything is written; the study is validated by the same reader ``headsearch run`` uses, then written.
"""

from __future__ import annotations

import os
from pathlib import Path

from headsearch.data.columns import guess_columns, sample_columns
from headsearch.data.files import Columns, detect_format, read_file
from headsearch.errors import DataError, HeadsearchError
from headsearch.models.hf.folder import read_config
from headsearch.models.hf.user_model import check_classifier_folder
from headsearch.study_config import load_study

# A first study runs the strategies that only score candidates (a few minutes on a MiniLM-sized model on two
# CPU cores; docs/your-model.md has the figures); the ones that search longer or train come commented out,
# to add to the same run with `--resume` (raise n_trials later the same way: `--resume --n-trials N`).
FIRST = """\
  - {name: dense, n_trials: 1}
  - {name: importance, n_trials: 20, space: {step: {choices: [0.1]}}}   # Michel et al. gradient importance
  - {name: nas, n_trials: 20}            # NSGA-II over per-layer head counts
  - {name: random, n_trials: 20}         # the baseline every strategy must beat
"""
ASTAR = ("{name: astar, n_trials: 1, space: {heuristic: {choices: [importance]}, weight: {choices: [0.2]}, "
         "epsilon: {choices: [0.01]}, eval_rows: {choices: [256]}, max_masks: {low: 300, high: 300}}}")
LONGER = f"""\
  # Longer: uncomment, then `headsearch run THIS_FILE --resume` adds them to the same run (on a MiniLM-sized
  # model on two CPU cores about 6, 4, 4-6 and 3 minutes).
  # - {ASTAR}   # most heads removable within 1 point
  # - {{name: cahp, n_trials: 2}}            # clusters of heads with similar class separability, knee-chosen count
  # - {{name: static_gates, n_trials: 2}}    # gates learned for one budget (fine-tunes a copy of your model)
  # - {{name: budgeted_gates, n_trials: 3, space: {{adapt_epochs: {{high: 0}}}}}}   # one gated checkpoint for every budget
"""


def _path(p: Path) -> str:
    """A path as the study should hold it: relative to the working directory when inside it."""
    p = p.resolve()
    try:
        return os.path.relpath(p) if p.is_relative_to(Path.cwd()) else str(p)
    except ValueError:
        return str(p)


def _has_splits(folder: Path) -> bool:
    """Whether a ``datasets`` folder holds named splits (a DatasetDict) rather than one dataset."""
    return (folder / "dataset_dict.json").is_file()


def write_study(model_dir: Path, data: Path, out: Path, *, dev: Path | None = None, test: Path | None = None,
                name: str | None = None, text_column: str | None = None, pair_column: str | None = None,
                label_column: str | None = None, max_length: int | None = None, overwrite: bool = False) -> Path:
    """Write ``out``, a study of ``model_dir`` on ``data``; returns ``out``."""
    if out.exists() and not overwrite:
        raise HeadsearchError(f"{out} already exists; pass --overwrite or choose another --out.")
    family = check_classifier_folder(model_dir)  # the checks `run` makes before it writes anything, weights included
    config = read_config(model_dir)
    id2label = config.get("id2label") or {str(i): f"LABEL_{i}" for i in range(int(config.get("num_labels", 2)))}
    labels = [str(id2label[k]) for k in sorted(id2label, key=int)]
    if not data.exists():
        raise HeadsearchError(f"Data file not found: {data}")
    kind = detect_format(data)
    text, pair, label = guess_columns(sample_columns(data, kind), text=text_column, pair=pair_column, label=label_column)
    split = "train" if kind == "datasets" and _has_splits(data) else None
    rows = read_file(data, Columns(text=text, pair=pair, label=label), format=kind, split=split)
    _, matched = rows.aligned_to(labels)  # raises, naming both label lists, when they cannot be matched
    for other in (p for p in (dev, test) if p is not None):  # the study names one set of columns for every file
        try:
            read_file(other, Columns(text=text, pair=pair, label=label), format=detect_format(other))
        except DataError as e:
            raise DataError(f"{e} `init` reads every file with the columns of {data.name}: give {other.name} the "
                            "same header.") from None
    positions = int(config.get("max_position_embeddings") or config.get("n_positions") or 512)
    max_length = max_length or min(128, positions)
    if max_length > positions:
        raise HeadsearchError(f"--max-length {max_length} exceeds the model's {positions} positions.")
    name = name or f"{Path(model_dir).resolve().name}-{data.stem}"
    if dev is not None:
        files = f"  train: {_path(data)}\n  dev: {_path(dev)}\n" + (f"  test: {_path(test)}\n" if test else "")
    elif kind == "datasets" and _has_splits(data):
        files = f"  file: {_path(data)}                 # a datasets folder with its own splits\n"
    else:
        files = f"  file: {_path(data)}\n  split: {{dev: 0.1, test: 0.1}}      # seeded, stratified by label\n"
    gqa = int(config.get("num_key_value_heads") or config.get("num_attention_heads") or 1) \
        != int(config.get("num_attention_heads") or 1)
    text_yaml = text if pair is None else f"{text}\n  text_pair_column: {pair}"
    study = f"""\
# Written by `headsearch init` for {family.name} model {model_dir} and data {data}.
# Columns: text {text!r}{f", pair {pair!r}" if pair else ""}, label {label!r}; labels matched {matched}.
name: "{name}"
seed: 0
data:
{files}  text_column: {text_yaml}
  label_column: {label}
  search_split: dev                 # candidates are scored on dev; test is for the final report
  scoring_rows: 512                 # train rows that head scores are computed on
model:
  source: {_path(model_dir)}
  max_length: {max_length}
  train: null                       # your fine-tuned classifier is searched as it is
  head_unit: query                  # {"or kv_group: remove whole key/value groups" if gqa else "query heads"}
hardware: {{device: cpu, threads: 1, batch_size: 1, seq_len: {max_length}, repeats: 5}}
sampler: nsga2
objectives: [accuracy, flops, latency_ms]
strategies:
{FIRST}{LONGER.replace('THIS_FILE', _path(out))}"""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(study)
    try:
        load_study(tmp)  # the same validation `headsearch run` applies
    except HeadsearchError:
        tmp.unlink()
        raise
    os.replace(tmp, out)
    return out
