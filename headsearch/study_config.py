"""Study definitions: ``studies/NAME.yaml`` validated into a frozen ``StudyConfig``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from headsearch.data.sources import DATASETS
from headsearch.errors import HeadsearchError
from headsearch.objectives import DIRECTIONS

_STRICT = ConfigDict(extra="forbid", frozen=True)


class DataConfig(BaseModel):
    model_config = _STRICT
    dataset: str = "synthetic"
    data_dir: Path | None = None
    search_split: Literal["dev", "test"] = "dev"
    search_rows: int | None = Field(None, ge=1, description="evaluate candidates on the first N rows (all when null)")
    scoring_rows: int = Field(512, ge=1, description="train rows that head scores are computed on")

    @field_validator("dataset")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in DATASETS:
            raise ValueError(f"must be one of {list(DATASETS)}")
        return v


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
    source: str = Field("builtin", description="builtin, minilm, or a local BERT folder")
    max_length: int = Field(64, ge=1)
    train: TrainSettings = TrainSettings()
    builtin: BuiltinShape = BuiltinShape()


class HardwareConfig(BaseModel):
    model_config = _STRICT
    device: str = "cpu"
    threads: int = Field(1, ge=1)
    batch_size: int = Field(1, ge=1)
    seq_len: int = Field(64, ge=1)
    repeats: int = Field(5, ge=1, description="interleaved timing repeats per candidate")
    latency: Literal["measured", "table"] = Field(
        "measured", description="measured: time every candidate; table: predict from a per-(layer, heads) table "
                                "measured once per profile, checking every table_check_every-th candidate")
    table_check_every: int = Field(5, ge=1, description="latency: table: also measure every N-th candidate")


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


def load_study(path: str | Path, **overrides: Any) -> StudyConfig:
    """Read ``path`` and validate it; ``overrides`` replace top-level fields (e.g. ``output``)."""
    path = Path(path)
    if not path.is_file():
        raise HeadsearchError(f"Study file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise HeadsearchError(f"{path}: not valid YAML ({exc}).") from exc
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
