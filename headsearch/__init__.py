"""headsearch: attention-head allocation in Transformers as a search problem."""

from headsearch.errors import DataError, ExportError, HeadConfigError, HeadsearchError, ModelError
from headsearch.heads import HeadConfig

__version__ = "0.1.0"

__all__ = ["DataError", "ExportError", "HeadConfig", "HeadConfigError", "HeadsearchError", "ModelError"]
