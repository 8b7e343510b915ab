"""Head-allocation strategies: the plug-in contract, the registry and the built-ins."""

from headsearch.strategies.base import Candidate, Strategy, StudyContext
from headsearch.strategies.registry import ENTRY_POINT_GROUP, StrategyInfo, available, get

__all__ = ["ENTRY_POINT_GROUP", "Candidate", "Strategy", "StrategyInfo", "StudyContext", "available", "get"]
