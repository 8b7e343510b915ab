"""How the suite compares floats that were computed in two different ways.

The same float32 logits computed in another batch shape, row order, memory layout or thread count, or by
AVX-512 rather than AVX2 kernels, differ in the last digits: each product and sum rounds to 2**-24 (about
6e-8) relative, and a forward pass chains thousands of them. So two computations of the same quantity are
compared with a tolerance that covers that rounding and nothing more; the decisions taken from them
(predicted classes, correct-row counts, masks kept, heads pruned) are compared exactly. Values that are
stored and read back (weights in a file, a memoised score) are the same bits and compared exactly.
"""

from __future__ import annotations

import math

import pytest
import torch

# A loss or logit of the tiny test models (a few layers, width <= 128) recomputed in another batch composition:
# measured differences are below 1e-8 absolute / 1e-7 relative; 1e-5 relative is a hundred times that and still
# far below any change a removed head makes (>= 1e-3 in these tests, which check that separately).
RTOL = 1e-5
ATOL = 1e-6


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Two computations of the same logits agree up to float32 rounding."""
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL)


def same_score(a, b) -> bool:
    """Two ``MaskScore``s of the same mask from two batch compositions: the accuracy (a count of correct rows)
    and whether the scoring ran to the end are decisions, equal exactly; the mean loss agrees up to rounding
    (a stopped score's loss is NaN in both)."""
    if (a.accuracy, a.exact) != (b.accuracy, b.exact):
        return False
    if math.isnan(a.loss) or math.isnan(b.loss):
        return math.isnan(a.loss) and math.isnan(b.loss)
    return a.loss == pytest.approx(b.loss, rel=RTOL, abs=ATOL)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Weights saved and read back are the same bits."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
