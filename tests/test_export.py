"""Export folders reload to the same logits, ONNX agrees with torch, damage is detected."""

import json
import random

import numpy as np
import pytest
from conftest import make_tiny_bert, make_tiny_builtin
from floats import assert_close, same_weights

from headsearch import HeadConfig
from headsearch.errors import ExportError
from headsearch.export import export, load

TEXTS = ["the movie was not good .", "a great film", "bad plot", "w1 c0x1 not w5"]


def some_config(model) -> HeadConfig:
    rng = random.Random(7)
    kept = [tuple(rng.sample(range(model.num_heads), rng.randint(1, model.num_heads))) for _ in range(model.num_layers)]
    kept[0] = ()  # a layer with no head left must export and run too
    return HeadConfig(tuple(kept), model.num_heads)


@pytest.fixture(scope="module", params=["builtin", "bert"])
def exported(request, tiny_task, tiny_bert_dir, tmp_path_factory):
    """One export per model kind, read by every test of the module (none changes it)."""
    clf = make_tiny_builtin(tiny_task) if request.param == "builtin" else make_tiny_bert(tiny_bert_dir)
    config = some_config(clf.model)
    out = export(clf, tmp_path_factory.mktemp("export") / "export", head_config=config,
                 objectives={"accuracy": 0.91, "flops": 1234, "speedup": 1.15, "flops_ratio": 0.8,
                             "profile": json.dumps({"runtime": "onnxruntime", "runtime_version": "onnxruntime 1.0",
                                                    "batch_size": 1, "seq_len": 16, "threads": 1})})
    return clf.prune(config), config, out


def test_export_folder_contents(exported):
    _, config, out = exported
    names = {p.name for p in out.iterdir()}
    assert {"head_config.json", "model.safetensors", "headsearch_model.json", "model_card.md", "model.onnx",
            "manifest.json", "config.json", "modeling_headsearch.py", "headsearch_surgery.py"} <= names
    assert set(json.loads((out / "manifest.json").read_text())) == names - {"manifest.json"}  # every file checksummed
    assert ({"vocab.json"} <= names) or ({"tokenizer.json"} <= names)
    assert HeadConfig.load(out / "head_config.json") == config
    card = (out / "model_card.md").read_text()
    assert "| accuracy | 0.91 |" in card and f"{config.total_kept} of {config.total_heads}" in card
    # the measured speedup against 1 / FLOPs ratio = 1.25, in the runtime it was timed in: 1.15 x 0.8 = 0.92
    assert "Measured speedup 1.150x in onnxruntime (onnxruntime 1.0; batch 1" in card and "realised / ideal 0.920" in card
    assert "trust_remote_code=True" in card
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".export.")]  # no temp folder left


def test_reloaded_logits_equal_in_memory(exported):
    pruned, config, out = exported
    again = load(out)
    assert again.model.head_config == config
    assert same_weights(again.model, pruned.model)  # the same bits read back
    assert_close(again.logits(TEXTS), pruned.logits(TEXTS))  # computed on tensors of other memory layouts
    assert again.predict(TEXTS) == pruned.predict(TEXTS)


def test_onnxruntime_matches_torch(exported):
    ort = pytest.importorskip("onnxruntime")
    pruned, _, out = exported
    session = ort.InferenceSession(str(out / "model.onnx"))
    for texts in (TEXTS, TEXTS[:1]):  # dynamic batch and sequence length
        ids, mask = pruned.encode(texts)
        (logits,) = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        assert np.abs(logits - pruned.logits(texts).numpy()).max() <= 1e-4


def test_existing_folder_needs_overwrite(tiny_builtin, tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(ExportError, match="already exists"):
        export(tiny_builtin, tmp_path / "out", onnx=False)
    export(tiny_builtin, tmp_path / "out", onnx=False, overwrite=True)
    assert load(tmp_path / "out").model.head_config == tiny_builtin.model.head_config


def test_failed_export_leaves_nothing(tiny_builtin, tmp_path, monkeypatch):
    import headsearch.export as ex

    def boom(*_):
        raise ExportError("ONNX export failed (simulated)")

    monkeypatch.setattr(ex, "_write_onnx", boom)
    with pytest.raises(ExportError, match="simulated"):
        export(tiny_builtin, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_corrupted_exports_are_named(tiny_builtin, tmp_path):
    out = export(tiny_builtin, tmp_path / "e", onnx=False)
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ExportError, match=r"model\.safetensors: checksum mismatch"):
        load(out)
    weights.unlink()
    with pytest.raises(ExportError, match=r"model\.safetensors is missing"):
        load(out)
    (out / "manifest.json").write_text("{oops")
    with pytest.raises(ExportError, match="manifest.json: corrupted"):
        load(out)
    with pytest.raises(ExportError, match="not found"):
        load(tmp_path / "nothing")
    with pytest.raises(ExportError, match="no manifest.json"):
        load(tmp_path)


def test_inconsistent_head_config_is_caught(tiny_builtin, tmp_path):
    out = export(tiny_builtin, tmp_path / "e", head_config=some_config(tiny_builtin.model), onnx=False)
    other = HeadConfig.dense(tiny_builtin.model.num_layers, tiny_builtin.model.num_heads)
    other.save(out / "head_config.json")
    manifest = json.loads((out / "manifest.json").read_text())
    from headsearch.export import _sha256

    manifest["head_config.json"] = _sha256(out / "head_config.json")
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match="does not match the heads present"):
        load(out)
