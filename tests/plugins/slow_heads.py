"""Test plug-in: keeps the first k_i heads of layer i, slowly: SLOW_AFTER fast proposals (per process), then
SLOW_S seconds each. Both come from the environment, or from the JSON file SLOW_CONTROL names when it exists
(read at each proposal: Ray workers keep the environment of the Ray instance's start). A new GENERATION in the
file restarts the count: a worker process that served an earlier test must not carry its count over."""

import json
import os
import time
from pathlib import Path

from headsearch.heads import HeadConfig
from headsearch.strategies import Candidate, Strategy


class SlowHeads(Strategy):
    name = "slow-heads"
    search_space = __file__.replace(".py", ".yaml")
    proposed = 0
    generation = None

    def propose(self, params, context):
        generation = _setting("GENERATION", None)
        if generation != SlowHeads.generation:
            SlowHeads.generation, SlowHeads.proposed = generation, 0
        SlowHeads.proposed += 1
        if SlowHeads.proposed > int(_setting("SLOW_AFTER", 0)):
            time.sleep(float(_setting("SLOW_S", 0)))
        kept = tuple(tuple(range(params[f"k_{i}"])) for i in range(context.num_layers))
        return Candidate(HeadConfig(kept, context.num_heads))


def _setting(name, default):
    control = Path(os.environ.get("SLOW_CONTROL", "/nonexistent"))
    if control.is_file():
        return json.loads(control.read_text()).get(name, default)
    return os.environ.get(name, default)
