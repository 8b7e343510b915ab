"""The HeadedModel contract on both model kinds: gating, pruning, recording, the HF adapter, training."""

import json
import random

import pytest
import torch
from conftest import WORDS
from floats import assert_close, same_weights

from headsearch import HeadConfig, HeadConfigError, ModelError
from headsearch.data import negation_task
from headsearch.models import BuiltinConfig, TextClassifier, TrainConfig, accuracy, build_builtin, open_base, train_or_load

TEXTS = ["the movie was not good .", "a great film", "bad plot", "the actors is great great great ."]


def random_config(model, rng: random.Random, allow_empty: bool = True) -> HeadConfig:
    low = 0 if allow_empty else 1
    return HeadConfig(
        tuple(tuple(rng.sample(range(model.num_heads), rng.randint(low, model.num_heads))) for _ in range(model.num_layers)),
        model.num_heads,
    )


def test_masked_forward_equals_pruned_model(any_model):
    ids, mask = any_model.encode(TEXTS)
    model = any_model.model
    rng = random.Random(0)
    for _ in range(10):
        config = random_config(model, rng)
        masked = model(ids, mask, gates=torch.tensor(config.mask()))
        pruned = model.prune(config)
        assert pruned.head_config == config
        assert (pruned(ids, mask) - masked).abs().max().item() <= 1e-4
    # and the test can fail: removing a head does change the logits
    one_off = HeadConfig.dense(model.num_layers, model.num_heads).kept
    config = HeadConfig(((),) + one_off[1:], model.num_heads)
    assert (model.prune(config)(ids, mask) - model(ids, mask)).abs().max().item() > 1e-3


@pytest.mark.slow
def test_masked_forward_equals_pruned_minilm(minilm_clf):
    ids, mask = minilm_clf.encode(TEXTS)
    model = minilm_clf.model
    rng = random.Random(1)
    with torch.inference_mode():
        for _ in range(3):
            config = random_config(model, rng)
            diff = (model.prune(config)(ids, mask) - model(ids, mask, gates=torch.tensor(config.mask()))).abs().max()
            assert diff.item() <= 1e-4


def test_per_example_and_soft_gates(any_model):
    model = any_model.model
    ids, mask = any_model.encode(TEXTS)
    rng = random.Random(2)
    configs = [random_config(model, rng) for _ in ids]
    per_example = torch.stack([torch.tensor(c.mask()) for c in configs])
    batched = model(ids, mask, gates=per_example)
    for i, c in enumerate(configs):
        single = model(ids[i:i + 1], mask[i:i + 1], gates=torch.tensor(c.mask()))
        assert torch.allclose(batched[i:i + 1], single, atol=1e-5)
    # soft gates of 1 are the dense model; a soft gate scales a head's output linearly before O
    ones = torch.ones(model.num_layers, model.num_heads)
    assert torch.allclose(model(ids, mask, gates=ones), model(ids, mask), atol=1e-6)
    half = model(ids, mask, gates=0.5 * ones)
    assert not torch.allclose(half, model(ids, mask), atol=1e-4)


def test_gates_on_pruned_model_use_dense_indices(any_model):
    model = any_model.model
    ids, mask = any_model.encode(TEXTS)
    rng = random.Random(3)
    outer = random_config(model, rng, allow_empty=False)
    inner = HeadConfig(tuple(layer[: max(1, len(layer) // 2)] for layer in outer.kept), model.num_heads)
    pruned = model.prune(outer)
    gated = pruned(ids, mask, gates=torch.tensor(inner.mask()))
    assert torch.allclose(gated, model.prune(inner)(ids, mask), atol=1e-4)
    assert torch.allclose(pruned.prune(inner)(ids, mask), gated, atol=1e-4)  # pruning twice
    missing = next(h for h in range(model.num_heads) if h not in outer.kept[0]) if len(outer.kept[0]) < model.num_heads else None
    if missing is not None:
        with pytest.raises(HeadConfigError, match="already pruned"):
            pruned.prune(HeadConfig(((missing,),) + outer.kept[1:], model.num_heads))


def test_bad_gate_shape(any_model):
    ids, mask = any_model.encode(TEXTS)
    with pytest.raises(HeadConfigError, match="Gates must have shape"):
        any_model.model(ids, mask, gates=torch.ones(2, 2))


def test_record_heads_shapes_and_consistency(any_model):
    model = any_model.model
    ids, mask = any_model.encode(TEXTS)
    config = HeadConfig(tuple(tuple(range(1, model.num_heads)) for _ in range(model.num_layers)), model.num_heads)
    pruned = model.prune(config)
    with pruned.record_heads(attention=True) as rec:
        pruned(ids, mask)
    assert len(rec.context) == len(rec.attention) == model.num_layers
    b, s = ids.shape
    k = model.num_heads - 1
    assert rec.context[0].shape == (b, k, s, model.head_dim)
    assert rec.attention[0].shape == (b, k, s, s)
    assert rec.heads[0] == tuple(range(1, model.num_heads))
    assert torch.allclose(rec.attention[0].sum(-1), torch.ones(b, k, s), atol=1e-5)
    # padding keys get no attention
    assert rec.attention[0][..., mask[0] == 0][0].abs().max().item() < 1e-6 if (mask[0] == 0).any() else True
    # headsearch's hooks are removed afterwards (transformers keeps its own output-capturing ones)
    hooks = [h for m in pruned.modules() for h in (*m._forward_pre_hooks.values(), *m._forward_hooks.values())]
    assert not any("TransformersClassifier" in repr(h) for h in hooks)
    # the same heads, recorded from the dense model with the pruned heads gated off, agree
    with model.record_heads() as dense_rec:
        model(ids, mask, gates=torch.tensor(config.mask()))
    assert torch.allclose(dense_rec.context[0][:, 0], torch.zeros_like(dense_rec.context[0][:, 0]))
    assert torch.allclose(dense_rec.context[0][:, 1:], rec.context[0], atol=1e-5)


def test_base_checkpoint_gets_a_fresh_head_on_its_own_weights(tiny_bert_dir, tiny_bert):
    """A base checkpoint (no head) becomes its family's classifier: the encoder's weights are the file's, the
    head is new, and the tokenizer is the folder's."""
    from safetensors.torch import load_file

    saved = load_file(str(tiny_bert_dir / "model.safetensors"))
    hf = tiny_bert.model.hf
    assert type(hf).__name__ == "BertForSequenceClassification" and hf.config.num_labels == 2
    ours = hf.bert.state_dict()
    assert saved and all(torch.equal(ours[k.removeprefix("bert.")], v) for k, v in saved.items())
    ids, _ = tiny_bert.encode(["the movie was good"])
    assert ids[0].tolist() == [2, *[5 + WORDS.index(w) for w in ("the", "movie", "was", "good")], 3]  # [CLS] .. [SEP]


@pytest.mark.slow
def test_minilm_base_is_bert_with_a_fresh_head(minilm_clf):
    transformers = pytest.importorskip("transformers")
    from headsearch.models import minilm_path

    hf = transformers.BertModel.from_pretrained(minilm_path()).eval()
    ids, mask = minilm_clf.encode(TEXTS)
    assert minilm_clf.model.num_layers == 6 and minilm_clf.model.num_heads == 12
    assert ids[0, 0].item() == 101 and 102 in ids[0].tolist()  # [CLS] ... [SEP]
    with torch.inference_mode():
        ours = minilm_clf.model.hf.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        theirs = hf(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(ours, theirs)  # the same weights through the same code


def test_not_a_base_checkpoint(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        open_base(tmp_path / "nope", label_names=("a", "b"))
    with pytest.raises(ModelError, match="no config.json"):
        open_base(tmp_path, label_names=("a", "b"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ModelError, match="'gpt2' is not a supported family"):
        open_base(tmp_path, label_names=("a", "b"))


def test_base_checkpoint_with_wrong_weights(tiny_bert_dir, tmp_path):
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((tiny_bert_dir / name).read_bytes())
    with pytest.raises(ModelError, match="no weights"):
        open_base(tmp_path, label_names=("a", "b"))
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cut short or corrupted"):
        open_base(tmp_path, label_names=("a", "b"), max_length=16)
    (tmp_path / "model.safetensors").write_bytes((tiny_bert_dir / "model.safetensors").read_bytes())
    with pytest.raises(ModelError, match="exceeds the model's 32 positions"):
        open_base(tmp_path, label_names=("a", "b"), max_length=128)


def test_word_tokenizer_of_the_builtin_model(tmp_path):
    from headsearch.models.builtin import word_tokenizer

    tok = word_tokenizer(["Not good!", "good film", "good"], max_size=8)
    assert tok.convert_ids_to_tokens(list(range(len(tok)))) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good",
                                                                "!", "film"]  # by frequency, then by the word
    enc = tok(["good unknownword !", "film"], padding=True)
    assert enc["input_ids"] == [[2, 5, 1, 6, 3], [2, 7, 3, 0, 0]]
    tok.save_pretrained(tmp_path)
    transformers = pytest.importorskip("transformers")
    again = transformers.AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
    assert again(["good unknownword !"])["input_ids"] == [[2, 5, 1, 6, 3]]


def test_save_load_round_trip_of_pruned_model(any_model, tmp_path):
    config = random_config(any_model.model, random.Random(5))
    pruned = any_model.prune(config)
    pruned.save(tmp_path)
    again = TextClassifier.load(tmp_path)
    assert again.model.head_config == config
    assert same_weights(again.model, pruned.model)
    assert_close(again.logits(TEXTS), pruned.logits(TEXTS))


def test_training_learns_and_checkpoint_is_reused(tmp_path):
    train_data = negation_task(1000, seed=10, max_len=12)
    dev = negation_task(200, seed=11, max_len=12)
    shape = BuiltinConfig(num_layers=2, num_heads=4, hidden_size=64, intermediate_size=128, max_length=16)
    built = []

    def build():
        built.append(1)
        return build_builtin(train_data, shape)

    recipe = {"builtin": shape.to_dict()}
    settings = TrainConfig(epochs=8, learning_rate=3e-3, batch_size=32)
    clf = train_or_load(tmp_path / "ckpt", build, recipe, train_data, settings, progress=False)
    losses = clf.meta["training"]["epoch_losses"]
    assert losses[-1] < losses[0]
    # the cue word alone gives 70%: the model learnt to use attention (BERT's [CLS] head: 0.855 at seed 0)
    assert accuracy(clf, dev) >= 0.8
    again = train_or_load(tmp_path / "ckpt", build, recipe, train_data, settings, progress=False)
    assert len(built) == 1  # loaded, not rebuilt
    assert same_weights(again.model, clf.model)
    train_or_load(tmp_path / "ckpt", build, recipe, train_data, TrainConfig(epochs=1), progress=False)
    assert len(built) == 2  # other settings: trained again


def test_frozen_encoder_only_moves_the_classifier(tiny_bert):
    before = {k: v.clone() for k, v in tiny_bert.model.state_dict().items()}
    data = negation_task(40, seed=1)
    from headsearch.data import TextDataset
    from headsearch.models import train

    data = TextDataset(data.texts, data.labels, ("neg", "pos"))
    train(tiny_bert, data, TrainConfig(epochs=1, freeze_encoder=True, learning_rate=1e-2), progress=False)
    after = tiny_bert.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"hf.classifier.weight", "hf.classifier.bias"}  # BERT's pooler is the encoder's


def test_broken_model_folder_is_named(tiny_builtin, tmp_path):
    tiny_builtin.save(tmp_path)
    meta = json.loads((tmp_path / "headsearch_model.json").read_text())
    kept = meta["head_config"]["kept"][0]
    meta["head_config"]["kept"][0] = [99]
    (tmp_path / "headsearch_model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"headsearch_model\.json: Layer 0 lists head 99, out of range"):
        TextClassifier.load(tmp_path)
    meta["head_config"]["kept"][0] = kept
    transformers = meta.pop("transformers")
    (tmp_path / "headsearch_model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="malformed"):
        TextClassifier.load(tmp_path)
    # a folder of headsearch 0.1.0's own encoder (retired): one line naming the version, not a traceback
    (tmp_path / "headsearch_model.json").write_text(json.dumps({**meta, "tokenizer": "word", "spec": {"hidden_size": 32}}))
    with pytest.raises(ModelError, match="written by headsearch 0.1.0 for its own encoder.*train the model again"):
        TextClassifier.load(tmp_path)
    (tmp_path / "headsearch_model.json").write_text(json.dumps({**meta, "transformers": transformers}))
    assert TextClassifier.load(tmp_path).model.head_config == tiny_builtin.model.head_config
    (tmp_path / "headsearch_model.json").write_text("{")
    with pytest.raises(ModelError, match="not valid JSON"):
        TextClassifier.load(tmp_path)


def test_logits_with_per_example_gates_across_batches(tiny_builtin):
    model = tiny_builtin.model
    rng = random.Random(4)
    configs = [random_config(model, rng) for _ in TEXTS]
    gates = torch.stack([torch.tensor(c.mask()) for c in configs])
    batched = tiny_builtin.logits(TEXTS, batch_size=3, gates=gates)
    for i, c in enumerate(configs):
        assert torch.allclose(batched[i], tiny_builtin.prune(c).logits([TEXTS[i]])[0], atol=1e-4)
