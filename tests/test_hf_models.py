"""The user's Hugging Face classifiers, every supported family: gated == pruned == reloaded; GQA in both units;
FLOPs against torch's counter; attention maps; clear errors for folders headsearch cannot search."""

from __future__ import annotations

import json
import random

import pytest
import torch
from floats import assert_close, same_score
from hf_models import DECODERS, FAMILIES, LABELS, WORDS, save_tiny_classifier, spread_router
from torch.utils.flop_counter import FlopCounterMode

from headsearch.analysis.mask_eval import MaskEvaluator
from headsearch.cost import count_flops
from headsearch.data.text import TextDataset
from headsearch.errors import HeadConfigError, ModelError
from headsearch.heads import HeadConfig
from headsearch.models.hf.surgery import EmptyAttention, RepeatedHeads, get_module
from headsearch.models.hf.user_model import open_classifier
from headsearch.models.text_classifier import TextClassifier

TEXTS = ["the movie was good", "not a good film but fun", "boring", "this story is very very great and the actor is fun"]
PAIRS = ["it was bad", "good", "the plot", "fun and good"]


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_clf(request, tmp_path_factory):
    folder = save_tiny_classifier(request.param, tmp_path_factory.mktemp(request.param))
    return request.param, open_classifier(folder, max_length=16)


def configs(clf, seed: int = 0) -> list[HeadConfig]:
    """Random configurations, one with an empty layer, for ``clf``'s units."""
    rng = random.Random(seed)
    L, H = clf.model.num_layers, clf.model.num_heads
    out = [HeadConfig(((),) + tuple(tuple(range(H)) for _ in range(L - 1)), H)]
    for _ in range(3):
        out.append(HeadConfig(tuple(tuple(rng.sample(range(H), rng.randint(1, H))) for _ in range(L)), H))
    return out


def test_gated_pruned_and_reloaded_models_agree(family_clf, tmp_path):
    family, clf = family_clf
    dense = clf.logits(TEXTS, pairs=PAIRS)
    for i, config in enumerate(configs(clf)):
        gated = clf.logits(TEXTS, pairs=PAIRS, gates=torch.tensor(config.mask()))
        pruned = clf.prune(config)
        assert type(pruned.model.hf) is type(clf.model.hf)  # still the user's transformers class
        assert pruned.model.head_config == config
        assert torch.allclose(pruned.logits(TEXTS, pairs=PAIRS), gated, atol=1e-4)
        folder = tmp_path / str(i)
        folder.mkdir()
        pruned.save(folder)
        reloaded = TextClassifier.load(folder)
        assert reloaded.model.head_config == config and type(reloaded.model.hf) is type(clf.model.hf)
        assert torch.allclose(reloaded.logits(TEXTS, pairs=PAIRS), gated, atol=1e-4)
        assert reloaded.label_names == clf.label_names
    assert not torch.allclose(gated, dense, atol=1e-3)  # the heads matter: the comparisons above could fail
    assert clf.model.head_config == HeadConfig.dense(clf.model.num_layers, clf.model.num_heads)  # unchanged


def test_pruning_cuts_the_real_modules(family_clf):
    family, clf = family_clf
    model = clf.model
    L, H = model.num_layers, model.num_heads
    before = sum(p.numel() for p in model.parameters())
    pruned = model.prune(HeadConfig(((), (0,)) + ((0,),) * (L - 2), H))
    layers = get_module(pruned.hf.base_model, pruned.family.layers)
    assert isinstance(get_module(layers[0], pruned.family.core), EmptyAttention)
    query = get_module(layers[1], pruned.family.query)
    assert query.out_features == model.head_dim * model.shape.query_per_unit
    assert sum(p.numel() for p in pruned.parameters()) < before
    with pytest.raises(HeadConfigError, match="already pruned"):
        pruned.prune(HeadConfig(((), (0, 1)) + ((0,),) * (L - 2), H))


def test_flops_match_flop_counter(family_clf):
    family, clf = family_clf
    ids = torch.randint(6, clf.model.shape.vocab_size, (1, 12))
    for config in configs(clf, seed=1):
        pruned = clf.model.prune(config)
        pruned.hf.requires_grad_(False)
        with pruned.record_heads(attention=True), FlopCounterMode(display=False) as counter, torch.no_grad():
            pruned(ids, torch.ones_like(ids))  # eager attention inside the block: the counter sees its products
        assert count_flops(clf.model.shape, config, 12).total == pytest.approx(counter.get_total_flops(), rel=0.01)


def test_attention_maps_are_recorded_and_the_kernel_restored(family_clf):
    family, clf = family_clf
    model = clf.model
    before = model.hf.config._attn_implementation
    ids, mask = clf.encode(TEXTS[:2])
    pruned = model.prune(configs(clf)[0])
    with pruned.record_heads(attention=True) as record, torch.no_grad():
        pruned(ids, mask)
    assert record.heads == list(pruned.head_config.kept)
    for maps, kept in zip(record.attention, record.heads, strict=True):
        assert maps.shape == (2, len(kept), ids.shape[1], ids.shape[1])
        if kept:
            assert torch.allclose(maps.sum(-1), torch.ones(2, len(kept), ids.shape[1]), atol=1e-4)
    assert pruned.hf.config._attn_implementation == before and model.hf.config._attn_implementation == before


def test_gate_function_equals_gate_tensor(family_clf):
    family, clf = family_clf
    model = clf.model
    ids, mask = clf.encode(TEXTS)
    gates = torch.rand(len(TEXTS), model.num_layers, model.num_heads, generator=torch.Generator().manual_seed(0))
    seen = []

    def gate_fn(layer: int, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        seen.append((layer, states.shape, attention_mask.shape))
        return gates[:, layer]

    with torch.no_grad():
        assert torch.allclose(model(ids, mask, gates=gate_fn), model(ids, mask, gates=gates), atol=1e-5)
    assert [s[0] for s in seen] == list(range(model.num_layers))
    with pytest.raises(HeadConfigError, match=r"Gates must have shape \[layers, heads\]"):
        model(ids, mask, gates=torch.ones(model.num_layers, model.num_heads + 1))
    # hooks live for the gated pass only: the bare model (what latency is measured on, and exported) has none
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.hf.modules())


def test_pairs_get_the_tokenizers_segment_ids(family_clf):
    family, clf = family_clf
    if not clf.model._token_types:
        pytest.skip(f"{family} has no token types")
    enc = clf.tokenizer.hf(TEXTS, PAIRS, padding=True, return_tensors="pt", return_token_type_ids=True)
    assert torch.equal(clf.model.token_types(enc["input_ids"], enc["attention_mask"]), enc["token_type_ids"])
    assert enc["token_type_ids"].sum() > 0


@pytest.fixture(scope="module")
def gqa_folder(tmp_path_factory):
    return save_tiny_classifier("llama", tmp_path_factory.mktemp("gqa"))


def test_gqa_query_heads_keep_a_group_while_any_of_its_queries_stays(gqa_folder):
    clf = open_classifier(gqa_folder, max_length=16)
    model = clf.model  # 4 query heads in 2 key/value groups: {0, 1} and {2, 3}
    assert model.num_heads == 4 and model.shape.kv_group_size == 2
    uniform = model.prune(HeadConfig(((0, 2), (1,)), 4))
    layers = get_module(uniform.hf.base_model, "layers")
    attn = layers[0].self_attn
    assert attn.k_proj.out_features == 2 * model.head_dim and not isinstance(attn.k_proj, RepeatedHeads)
    assert attn.num_key_value_groups == 1 and layers[1].self_attn.k_proj.out_features == model.head_dim
    uneven = model.prune(HeadConfig(((0, 1, 2), (2, 3)), 4))
    attn = get_module(uneven.hf.base_model, "layers")[0].self_attn
    assert isinstance(attn.k_proj, RepeatedHeads) and attn.k_proj.weight.shape[0] == 2 * model.head_dim
    assert get_module(uneven.hf.base_model, "layers")[1].self_attn.num_key_value_groups == 2
    ids, mask = clf.encode(TEXTS)
    for config, pruned in ((HeadConfig(((0, 2), (1,)), 4), uniform), (HeadConfig(((0, 1, 2), (2, 3)), 4), uneven)):
        with torch.no_grad():
            assert torch.allclose(pruned(ids, mask), model(ids, mask, gates=torch.tensor(config.mask())), atol=1e-4)
    # FLOPs count key/value projections per group: one query per group costs the same K/V as two
    shape, s = model.shape, 10
    one = count_flops(shape, HeadConfig(((0, 2), (0, 2)), 4), s)
    two = count_flops(shape, HeadConfig(((0, 1, 2, 3), (0, 1, 2, 3)), 4), s)
    same_group = count_flops(shape, HeadConfig(((0, 1), (0, 1)), 4), s)
    h, d = shape.hidden_size, shape.head_dim
    projection = 2 * s * h * d  # one head's projection, one layer
    assert two.qkv - one.qkv == 2 * 2 * projection  # two more query heads in each of 2 layers, no more K/V
    assert one.qkv - same_group.qkv == 2 * 2 * projection  # a second group's K and V, in each of 2 layers


def test_gqa_whole_groups_as_units(gqa_folder):
    clf = open_classifier(gqa_folder, max_length=16, unit="kv_group")
    model = clf.model
    assert model.num_heads == 2 and model.shape.query_per_unit == 2
    config = HeadConfig(((1,), ()), 2)
    pruned = model.prune(config)
    attn = get_module(pruned.hf.base_model, "layers")[0].self_attn
    assert attn.q_proj.out_features == 2 * model.head_dim and attn.k_proj.out_features == model.head_dim
    assert attn.num_key_value_groups == 2
    ids, mask = clf.encode(TEXTS)
    with torch.no_grad():
        assert torch.allclose(pruned(ids, mask), model(ids, mask, gates=torch.tensor(config.mask())), atol=1e-4)
    with pruned.record_heads(attention=True) as record, torch.no_grad():
        pruned(ids, mask)
    assert record.attention[0].shape[1] == 1  # one map per unit: the mean of its query heads'
    query_clf = open_classifier(gqa_folder, max_length=16)
    as_queries = HeadConfig(((2, 3), ()), 4)
    assert query_clf.prune(as_queries).logits(TEXTS).allclose(clf.prune(config).logits(TEXTS), atol=1e-5)


def test_folders_headsearch_cannot_search(tmp_path, tiny_bert_dir):
    transformers = pytest.importorskip("transformers")
    gpt2 = tmp_path / "gpt2"
    transformers.GPT2ForSequenceClassification(transformers.GPT2Config(n_layer=1, n_head=2, n_embd=8,
                                                                       vocab_size=20)).save_pretrained(gpt2)
    with pytest.raises(ModelError, match=r"model_type 'gpt2' is not a supported family; headsearch prunes .*bert.*llama"):
        open_classifier(gpt2, max_length=8)
    with pytest.raises(ModelError, match=r"name no \*ForSequenceClassification model"):
        open_classifier(tiny_bert_dir, max_length=8)  # a base BertModel, no classification head
    with pytest.raises(ModelError, match="no config.json"):
        open_classifier(tmp_path, max_length=8)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        open_classifier(broken, max_length=8)


def test_decoder_without_a_pad_token_id_pads_with_its_end_token(tmp_path):
    folder = save_tiny_classifier("qwen2", tmp_path / "q")
    config = json.loads((folder / "config.json").read_text())
    assert config.get("pad_token_id") is None
    clf = open_classifier(folder, max_length=16)
    assert clf.model.hf.config.pad_token_id == clf.tokenizer.pad_id
    # a padded batch classifies every row as it classifies the row alone (last real token)
    alone = torch.cat([clf.logits([t]) for t in TEXTS])
    assert torch.allclose(clf.logits(TEXTS), alone, atol=1e-4)
    assert "qwen2" in DECODERS


def _structure(model) -> list:
    """What runs: every module's class and every parameter's and buffer's shape, in order."""
    return [(name, type(m).__name__, [tuple(p.shape) for p in (*m.parameters(recurse=False), *m.buffers(recurse=False))])
            for name, m in model.named_modules()]


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_equal_layouts_prune_to_the_same_shapes(family, tmp_path):
    """``layout`` is what latency is memoised by: configurations of equal layout prune to models of identical
    module classes and tensor shapes (so they run the same kernels), other layouts do not. Grouped-query
    attention: the query heads kept per surviving key/value group decide the layout, not only their total."""
    model = open_classifier(save_tiny_classifier(family, tmp_path / family), max_length=16).model
    rng = random.Random(0)
    by_layout: dict[tuple, list] = {}
    for _ in range(40):
        config = HeadConfig(tuple(tuple(sorted(rng.sample(range(4), rng.randint(0, 4)))) for _ in range(2)), 4)
        by_layout.setdefault(model.layout(config), []).append(config)
    structures = {layout: _structure(model.prune(configs[0])) for layout, configs in by_layout.items()}
    assert len(set(map(repr, structures.values()))) == len(structures)  # other layouts, other shapes
    for layout, configs in by_layout.items():
        for config in configs[1:]:
            assert _structure(model.prune(config)) == structures[layout]
    assert any(len(configs) > 1 and len({c.kept for c in configs}) > 1 for configs in by_layout.values())
    if family == "llama":  # two query heads in one group, or one in each: the same count, another layout
        assert model.layout(HeadConfig(((0, 1), (0, 1)), 4)) != model.layout(HeadConfig(((0, 2), (0, 1)), 4))


def test_resuming_from_a_prefix_equals_a_whole_pass(family_clf):
    """Prefix reuse on the user's model: layers before ``start`` replay the prefix's output, for stacked copies."""
    family, clf = family_clf
    model, L = clf.model, clf.model.num_layers
    ids, attn = clf.encode(TEXTS, PAIRS)
    reference = torch.tensor(configs(clf, seed=1)[1].mask(), dtype=torch.float32)
    ran: list[int] = []  # layers whose attention output projection ran
    handles = [get_module(layer, model.family.output).register_forward_pre_hook(lambda m, a, i=i: ran.append(i))
               for i, layer in enumerate(model._layers())]
    outputs = model.prefix(ids, attn, reference, L - 1)
    assert len(outputs) == L - 1 and ran == list(range(L - 1))  # the pass ended after the layers asked for
    outputs.append(model.prefix(ids, attn, reference, L)[-1])
    for start in range(L + 1):
        masks = [reference.clone() for _ in range(3)]
        for c, m in enumerate(masks):  # copies that differ from the reference from layer `start` on
            for layer in range(start, L):
                m[layer] = torch.tensor([float((c + h + layer) % 3 != 0) for h in range(model.num_heads)])
        gates = torch.stack(masks).repeat_interleave(len(TEXTS), dim=0)
        ran.clear()
        resumed = model.resume(ids.repeat(3, 1), attn.repeat(3, 1), gates,
                               outputs[start - 1] if start else None, start, copies=3)
        assert ran == list(range(start, L))  # the layers before start were replayed, not run
        whole = model(ids.repeat(3, 1), attn.repeat(3, 1), gates=gates)
        assert_close(resumed, whole)
    for handle in handles:
        handle.remove()
    assert all("forward" not in vars(layer) for layer in model._layers())  # the replay is undone


@pytest.mark.parametrize("family", ["bert", "llama", "deberta-v2"])
def test_mask_scores_with_prefix_reuse_equal_whole_passes(family, tmp_path):
    """A* and CAHP score masks against a reference on the user's model: the same scores and early-stop decisions
    with prefix reuse as with whole passes."""
    clf = open_classifier(save_tiny_classifier(family, tmp_path), max_length=16)
    rng = random.Random(0)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(2, 12))) for _ in range(40)]
    data = TextDataset(tuple(texts), tuple(rng.randrange(3) for _ in texts), LABELS)
    reference = torch.tensor(configs(clf, seed=2)[2].mask(), dtype=torch.float32)
    masks = []
    for x in range(clf.model.num_layers * clf.model.num_heads):  # the reference's children, as A* scores them
        m = reference.clone().flatten()
        m[x] = 1.0 - m[x]
        masks.append(m.view_as(reference))
    for at_least in (None, 0.4):
        reused, whole = (MaskEvaluator(clf, data, batch_size=8, reuse_prefix=r) for r in (True, False))
        a, b = (e.score(masks, reference=reference, at_least=at_least) for e in (reused, whole))
        assert all(same_score(x, y) for x, y in zip(a, b, strict=True))
        assert reused.counts.layer_rows_reused > 0 and whole.counts.layer_rows_reused == 0
    assert len({round(s.loss, 4) for s in a if s.exact}) > 3  # the masks differ, so equality is not trivial


@pytest.mark.parametrize("unit", ["query", "kv_group"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_routed_runtime_equals_masked_forward(family, unit, tmp_path):
    """BudgetFormer's runtime on the user's model: each input's chosen heads only (batch 1: one cut layer; a
    batch: rows grouped by head set) gives the masked forward's logits, on every family; under grouped-query
    attention by query head, a key/value group some of whose query heads are chosen is computed once for them."""
    from headsearch.models.routing import RoutedClassifier

    if unit == "kv_group" and family not in DECODERS:
        pytest.skip(f"{family} has no key/value groups")
    clf = open_classifier(save_tiny_classifier(family, tmp_path), max_length=16, unit=unit)
    model = clf.model
    rng = random.Random(0)
    ids, mask = clf.encode([" ".join(rng.choices(WORDS, k=rng.randint(1, 12))) for _ in range(12)])
    router = spread_router(model, ids, mask)
    runtime = RoutedClassifier(model, router)
    with torch.inference_mode(), router.tracing() as trace:
        routed = runtime(ids, mask)
        masked = model(ids, mask, gates=router)
        single = torch.cat([runtime(ids[i:i + 1, :int(mask[i].sum())], mask[i:i + 1, :int(mask[i].sum())])
                            for i in range(len(ids))])
    kept = trace.kept()[:len(ids)]
    assert max(len({tuple(r) for r in kept[:, i].int().tolist()}) for i in range(model.num_layers)) > 1  # groups
    assert kept.sum(-1).unique().numel() > 1  # budgets differ between rows
    assert_close(routed, masked)
    assert_close(single, masked)
    assert not torch.allclose(routed, model(ids, mask), atol=1e-3)  # routing changed the result
    cut = {key: m for key, m in runtime._cut.items()}
    assert all("forward" not in vars(layer) for layer in model._layers())  # the layers are themselves again
    assert model.head_config == HeadConfig.dense(model.num_layers, model.num_heads)  # the model is left whole
    if family == "llama" and unit == "query":  # a group with one chosen query head keeps its key/value head
        (layer, heads), module = next((k, m) for k, m in cut.items() if len({h // 2 for h in k[1]}) > len(k[1]) / 2)
        assert get_module(module, model.family.key).out_features // model.head_dim == len({h // 2 for h in heads})
