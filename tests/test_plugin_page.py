"""docs/plugins.md's reference strategy, exactly as the page shows it, passes the conformance suite as a class
(not installed), and works in a study run."""

from __future__ import annotations

import importlib.util
import re
import tempfile
from pathlib import Path

from headsearch.testing import StrategyConformance

PAGE = Path(__file__).parent.parent / "docs" / "plugins.md"
_FOLDER = tempfile.TemporaryDirectory(prefix="plugin_page_")  # the page's files, removed when the session ends


def _page_module():
    """The page's ``# my_package/output_norm.py`` and ``.yaml`` blocks written to a folder and imported."""
    blocks = dict(re.findall(r"```(?:python|yaml)\n# my_package/(output_norm\.\w+)\n(.*?)```", PAGE.read_text(), re.S))
    assert set(blocks) == {"output_norm.py", "output_norm.yaml"}, sorted(blocks)
    folder = Path(_FOLDER.name)
    for name, text in blocks.items():
        (folder / name).write_text(text)
    spec = importlib.util.spec_from_file_location("output_norm", folder / "output_norm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


OUTPUT_NORM = _page_module().OutputNorm


class TestPageStrategy(StrategyConformance):
    strategy = OUTPUT_NORM


def test_page_strategy_keeps_the_largest_outputs():
    from headsearch.testing import tiny_context

    context = tiny_context()
    strategy = OUTPUT_NORM()
    strategy.prepare(context)
    candidate = strategy.propose({"budget": 0.5}, context)
    norms = context.cache[("output-norm", "norms")]
    assert candidate.head_config.total_kept == 6 and candidate.info == {"heads": 6}
    for layer, kept in enumerate(candidate.head_config.kept):  # the best head of every layer is kept
        assert max(range(4), key=lambda h: norms[layer][h]) in kept
