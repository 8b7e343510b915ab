"""Study definitions: ``studies/NAME.yaml`` validated into a frozen ``StudyConfig``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from headsearch.core import DIRECTIONS
from headsearch.data.files import Columns
from headsearch.data.sources import DATASETS, DataSource, Source, preset
from headsearch.errors import HeadsearchError, yaml_problem
from headsearch.resources import packaged, packaged_names
from headsearch.search.early_stopping import Rungs

_STRICT = ConfigDict(extra="forbid", frozen=True)


class DataConfig(BaseModel):
    """The study's data: a named dataset (``dataset``), or the user's files: ``train``/``dev``/``test`` (a file each),
    or one ``file`` split by ``split`` fractions (a ``datasets`` folder may hold its own splits)."""

    model_config = _STRICT
    dataset: str | None = Field(None, description="synthetic | sst2 | ag_news (default synthetic when no file is given)")
    data_dir: Path | None = Field(None, description="folder of a named dataset")
    train: Path | None = None
    dev: Path | None = None
    test: Path | None = None
    file: Path | None = Field(None, description="one file (or datasets folder) for every split")
    split: dict[Literal["dev", "test"], float] | None = Field(None, description="fractions of `file` for dev/test")
    format: Literal["csv", "tsv", "jsonl", "datasets"] | None = Field(None, description="default: from the suffix")
    text_column: str | list[str] = Field("text", description="text column; several are joined with '. '")
    text_pair_column: str | None = Field(None, description="second text of a sentence pair")
    label_column: str = "label"
    labels: list[str] | dict[str, str] | None = Field(None, description="label names in id order, or raw -> name")
    header: bool = Field(True, description="CSV/TSV: the first row names the columns")
    search_split: Literal["dev", "test"] = "dev"
    search_rows: int | None = Field(None, ge=1, description="evaluate candidates on the first N rows (all when null)")
    scoring_rows: int = Field(512, ge=1, description="train rows that head scores are computed on")

    @field_validator("dataset")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        if v is not None and v not in DATASETS:
            raise ValueError(f"must be one of {list(DATASETS)}, or leave it out and give your files (train, dev or file)")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        files = [k for k in ("train", "dev", "test") if getattr(self, k) is not None]
        if self.dataset is not None and (files or self.file is not None):
            raise ValueError(f"give either dataset ({self.dataset}) or your own files ({files or ['file']}), not both")
        if files and self.file is not None:
            raise ValueError("give either one file per split (train, dev, test) or one `file` with `split`, not both")
        if files and "train" not in files:
            raise ValueError("the train file is missing (data.train)")
        if self.split is not None and self.file is None:
            raise ValueError("`split` fractions divide one `file`; give data.file")
        return self

    def source(self, seed: int) -> Source:
        """Where the splits come from (a named dataset's preset, or the user's files)."""
        if self.train is None and self.file is None:
            return preset(self.dataset or "synthetic", self.data_dir)
        text = tuple(self.text_column) if isinstance(self.text_column, list) else self.text_column
        labels = tuple(self.labels) if isinstance(self.labels, list) else self.labels
        columns = Columns(text=text, pair=self.text_pair_column, label=self.label_column, labels=labels, header=self.header)
        files = {k: getattr(self, k) for k in ("train", "dev", "test") if getattr(self, k) is not None}
        return DataSource(name=Path(self.train or self.file).stem, files=files, file=self.file, fractions=self.split,
                          columns=columns, format=self.format, seed=seed)

    def describe(self) -> dict[str, Any]:
        """This data section with absolute paths: what a model folder records to find its data again."""
        out = self.model_dump(mode="json", exclude={"search_split", "search_rows", "scoring_rows"})
        for key in ("data_dir", "train", "dev", "test", "file"):
            if out[key] is not None:
                out[key] = str(Path(out[key]).resolve())
        return out


class TrainSettings(BaseModel):
    model_config = _STRICT
    epochs: int = Field(5, ge=1)
    learning_rate: float | None = Field(None, gt=0)
    batch_size: int = Field(32, ge=1)
    train_rows: int | None = Field(None, ge=1)
    freeze_encoder: bool = False


class BuiltinShape(BaseModel):
    model_config = _STRICT
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(8, ge=1)
    hidden_size: int = Field(128, ge=1)
    intermediate_size: int = Field(512, ge=1)


class ModelConfig(BaseModel):
    model_config = _STRICT
    source: str = Field("builtin", description="builtin, minilm, or a local Hugging Face folder: a fine-tuned "
                                               "*ForSequenceClassification is searched as it is; a base BERT gets a head")
    max_length: int = Field(64, ge=1)
    head_unit: Literal["query", "kv_group"] = Field("query", description="grouped-query attention: search query heads "
                                                                         "or whole key/value groups")
    train: TrainSettings | None = Field(TrainSettings(), description="null: use the model as it is (a fine-tuned "
                                                                      "classifier always is)")
    builtin: BuiltinShape = BuiltinShape()


class HardwareConfig(BaseModel):
    model_config = _STRICT
    device: str = "cpu"
    runtime: Literal["eager", "compile", "onnxruntime"] = Field(
        "eager", description="what latency is timed in, as the deployment runs it: eager PyTorch, torch.compile, or the "
                             "model exported to ONNX and run by ONNX Runtime (every candidate is exported or compiled "
                             "once: pair it with latency: table)")
    threads: int = Field(1, ge=1)
    batch_size: int = Field(1, ge=1)
    seq_len: int = Field(64, ge=1)
    repeats: int = Field(5, ge=1, description="interleaved timing repeats per candidate")
    latency: Literal["measured", "table"] = Field(
        "measured", description="measured: time every candidate; table: predict from a per-(layer, heads) table "
                                "measured once per profile, checking every table_check_every-th candidate")
    table_check_every: int = Field(5, ge=1, description="latency: table: also measure every N-th candidate")


class EarlyStoppingConfig(BaseModel):
    """Early stopping of trials that train, in both drivers (``headsearch.search.early_stopping``)."""

    model_config = _STRICT
    rule: Literal["mo_asha", "asha", "none"] = Field(
        "mo_asha", description="mo_asha: successive halving on (accuracy, cost), keeping the cheap end of the front; "
                               "asha: on accuracy alone; none: every trial runs to its end")
    eta: int = Field(4, ge=2, description="a trial goes on past a rung if it ranks in the top 1/eta there")
    grace: int = Field(1, ge=1, description="the first rung (epochs)")
    max_t: int = Field(100, ge=1, description="no rung beyond this many epochs")
    row_fractions: tuple[float, ...] = Field(
        (0.125, 0.25, 0.5), description="a candidate's accuracy is compared after these shares of the search split's "
                                        "rows (stratified, seeded order) and scored on more only while it ranks in the "
                                        "top 1/row_eta; [] scores every candidate on every row")
    row_eta: int = Field(2, ge=2, description="a candidate goes on past a row rung if it ranks in the top 1/row_eta")
    min_rows: int = Field(64, ge=1, description="no row rung of fewer rows than this")

    @model_validator(mode="after")
    def _rungs(self) -> EarlyStoppingConfig:
        self.rungs()  # max_t >= grace
        return self

    def rungs(self) -> Rungs:
        return Rungs(self.rule, self.eta, self.grace, self.max_t, tuple(self.row_fractions), self.row_eta, self.min_rows)


class StrategyRun(BaseModel):
    model_config = _STRICT
    name: str
    n_trials: int = Field(10, ge=1)
    space: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-parameter overrides")


class StudyConfig(BaseModel):
    model_config = _STRICT
    name: str
    seed: int = 0
    output: Path | None = None
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    hardware: HardwareConfig = HardwareConfig()
    sampler: Literal["nsga2", "tpe", "random"] = "nsga2"
    objectives: tuple[str, ...] = ("accuracy", "flops", "latency_ms")
    strategies: tuple[StrategyRun, ...] = Field(min_length=1)
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    storage: str | None = Field(None, description="Optuna storage URL (default: sqlite in the output folder)")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (default: sqlite:///mlruns/mlflow.db)")

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [o for o in v if o not in DIRECTIONS]
        if unknown:
            raise ValueError(f"unknown objective(s) {unknown}; choose from {sorted(DIRECTIONS)}")
        if "accuracy" not in v:
            raise ValueError("accuracy must be one of the objectives")
        return v

    @property
    def out_dir(self) -> Path:
        return self.output or Path("runs") / self.name


def find_study(ref: str | Path) -> Path:
    """A study file: a path, or the name of a study that ships with headsearch (``quickstart``)."""
    path = Path(ref)
    if path.is_file():
        return path
    if path.suffix == "" and len(path.parts) == 1 and (packaged("studies") / f"{path}.yaml").is_file():
        return packaged("studies") / f"{path}.yaml"
    raise HeadsearchError(f"Study file not found: {ref} (or name one that ships with headsearch: "
                          f"{', '.join(packaged_names('studies'))}).")


def load_study(path: str | Path, **overrides: Any) -> StudyConfig:
    """Read ``path`` and validate it; ``overrides`` replace top-level fields (e.g. ``output``)."""
    path = find_study(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise HeadsearchError(f"{path}: not valid YAML ({yaml_problem(exc)}).") from exc
    if not isinstance(raw, dict):
        raise HeadsearchError(f"{path}: a study is a YAML mapping (name, data, model, strategies, ...).")
    raw.setdefault("name", path.stem)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "study"
        raise HeadsearchError(f"{path}: {where}: {err['msg']}.") from exc
