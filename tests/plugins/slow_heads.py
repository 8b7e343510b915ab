"""Test plug-in: keeps the first k heads of every layer, slowly: SLOW_AFTER fast proposals, then SLOW_S seconds each."""

import os
import time

from headsearch.heads import HeadConfig
from headsearch.strategies import Candidate, Strategy


class SlowHeads(Strategy):
    name = "slow-heads"
    search_space = __file__.replace(".py", ".yaml")
    proposed = 0

    def propose(self, params, context):
        SlowHeads.proposed += 1
        if SlowHeads.proposed > int(os.environ.get("SLOW_AFTER", "0")):
            time.sleep(float(os.environ.get("SLOW_S", "0")))
        k = params["k"]
        return Candidate(HeadConfig(tuple(tuple(range(k)) for _ in range(context.num_layers)), context.num_heads))
