"""An export loads where only transformers and torch are installed: no headsearch, Optuna, Ray or MLflow.

The environment is the import closure of ``transformers`` and ``torch`` (their requirements, recursively, as
their metadata declares them) linked from this one into a new folder, and a fresh interpreter started with
``-I -S`` (no site-packages, no user site, no PYTHONPATH) that sees that folder alone: what
``pip install torch transformers`` gives, without downloading them again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch
from floats import assert_close
from hf_models import FAMILIES, save_tiny_classifier
from packaging.requirements import Requirement

from headsearch.export import export, load
from headsearch.heads import HeadConfig
from headsearch.models.hf.user_model import open_classifier

pytestmark = pytest.mark.slow

TEXTS = ["the movie was good", "not a good film but fun", "boring", "this story is very very great and the actor is fun"]

LOAD = """
import json, sys
sys.path.insert(0, sys.argv[1])
try:
    import headsearch
except ImportError:
    pass
else:
    sys.exit("headsearch is importable: the environment is not isolated")
import torch
from transformers import AutoModelForSequenceClassification
out = {}
for name, folder, ids, mask in json.loads(sys.argv[2]):
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits
    out[name] = [type(model).__name__, type(model).__mro__[1].__module__, logits.tolist()]
print(json.dumps(out))
"""


def _closure(*names: str) -> list[metadata.Distribution]:
    """The distributions ``names`` need, following their unconditional requirements (no extras)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # declared for another platform or Python, and absent here
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen[key] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _linked_site(folder: Path) -> Path:
    """A folder with links to the top-level files of ``transformers`` and ``torch``'s closure (and their
    ``.dist-info``: transformers checks its dependencies' versions on import)."""
    folder.mkdir()
    for dist in _closure("transformers", "torch"):
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            source = Path(dist.locate_file(top))
            if source.exists() and not (folder / top).exists():
                (folder / top).symlink_to(source)
    return folder


def test_every_familys_export_loads_with_transformers_and_torch_alone(tmp_path):
    cases, expected = [], {}
    for family in FAMILIES:
        clf = open_classifier(save_tiny_classifier(family, tmp_path / family), max_length=16)
        H = clf.model.num_heads
        config = HeadConfig(((), (0, 1, 3)), H)  # an empty layer, and GQA groups kept unevenly (2 + 1)
        out = export(clf, tmp_path / f"export-{family}", head_config=config, onnx=False)
        ids, mask = clf.encode(TEXTS)
        expected[family] = (type(clf.model.hf), load(out).logits(TEXTS))
        cases.append([family, str(out), ids.tolist(), mask.tolist()])
    site = _linked_site(tmp_path / "site")
    env = {"PATH": os.environ.get("PATH", ""), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-I", "-S", "-c", LOAD, str(site), json.dumps(cases)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    for family, (cls, logits) in expected.items():
        name, base_module, values = got[family]
        assert name == cls.__name__ and base_module == cls.__module__  # a subclass of the user's stock class
        assert_close(torch.tensor(values), logits)
