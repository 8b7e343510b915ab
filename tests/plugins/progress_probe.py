"""Test plug-in that "trains": it reports ``quality`` as its accuracy after each of 4 epochs, then keeps the first k
heads of every layer. A driver that stops trials early stops the outranked ones. An epoch takes PROBE_EPOCH_S x
k / num_heads seconds (from the environment; default 0): a cheaper candidate trains faster, so trials reach a rung in
another order than they started."""

import os
import time

from headsearch.heads import HeadConfig
from headsearch.strategies import Candidate, Strategy


class ProgressProbe(Strategy):
    name = "progress-probe"
    search_space = __file__.replace(".py", ".yaml")

    def propose(self, params, context):
        config = HeadConfig(tuple(tuple(range(params["k"])) for _ in range(context.num_layers)), context.num_heads)
        for epoch in range(1, 5):
            time.sleep(float(os.environ.get("PROBE_EPOCH_S", 0)) * params["k"] / context.num_heads)
            context.report_progress(epoch, lambda: params["quality"], lambda: config)
        return Candidate(config, info={"quality": params["quality"]})
