"""Test plug-in that "trains": it reports ``quality`` as its accuracy after each of 4 epochs, then keeps the
first k heads of every layer. A driver that stops lagging trials early stops the low-quality ones."""

from headsearch.heads import HeadConfig
from headsearch.strategies import Candidate, Strategy


class ProgressProbe(Strategy):
    name = "progress-probe"
    search_space = __file__.replace(".py", ".yaml")

    def propose(self, params, context):
        for epoch in range(1, 5):
            context.report_progress(epoch, lambda: params["quality"])
        k = params["k"]
        return Candidate(HeadConfig(tuple(tuple(range(k)) for _ in range(context.num_layers)), context.num_heads),
                         info={"quality": params["quality"]})
