"""Tiny Hugging Face classifiers of every supported family, built offline from configs (random weights)
and saved as a user would save theirs: ``save_pretrained`` of the model and of its tokenizer."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = ("the", "a", "movie", "film", "good", "bad", "not", "great", "plot", "actor", "was", "is", "very", "boring",
         "fun", "and", "but", "it", "this", "story")
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "</s>")
LABELS = ("negative", "positive", "neutral")
# family -> (config class, settings); 2 layers, 4 query heads of dimension 8, GQA with 2 key/value heads
FAMILIES = {
    "bert": ("BertConfig", {"type_vocab_size": 2}),
    "roberta": ("RobertaConfig", {"pad_token_id": 0, "type_vocab_size": 1}),
    "electra": ("ElectraConfig", {"embedding_size": 16}),
    "distilbert": ("DistilBertConfig", {}),
    "deberta-v2": ("DebertaV2Config", {"relative_attention": True, "pos_att_type": ["p2c", "c2p"],
                                       "position_buckets": 8, "max_relative_positions": 16, "type_vocab_size": 0}),
    "llama": ("LlamaConfig", {"num_key_value_heads": 2}),
    "qwen2": ("Qwen2Config", {"num_key_value_heads": 2}),
}
DECODERS = ("llama", "qwen2")


def _config(family: str, transformers):
    name, settings = FAMILIES[family]
    shape = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 48}
    if family == "distilbert":
        shape = {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 48}
    return getattr(transformers, name)(vocab_size=len(SPECIALS) + len(WORDS), max_position_embeddings=64,
                                       num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                                       label2id={n: i for i, n in enumerate(LABELS)}, **shape, **settings)


def _tokenizer(family: str, transformers):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate((*SPECIALS, *WORDS))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if family in DECODERS:  # no special tokens around texts; padded with the end-of-sequence token
        return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="</s>")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                                cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def save_tiny_classifier(family: str, folder: Path, *, seed: int = 0, scale: float = 0.3) -> Path:
    """A random ``*ForSequenceClassification`` of ``family`` with weights ``N(0, scale)`` (large enough that
    every head changes the logits, so equivalence tests can fail), saved with its tokenizer."""
    import transformers

    torch.manual_seed(seed)
    model = transformers.AutoModelForSequenceClassification.from_config(_config(family, transformers))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    model.save_pretrained(folder)
    _tokenizer(family, transformers).save_pretrained(folder)
    return folder


def spread_router(model, ids: torch.Tensor, mask: torch.Tensor, *, seed: int = 0):
    """A router (routing once, from the embeddings, on their mean) whose choices differ between these rows: a
    random router on a random model gives every row the same heads (their pooled states differ little beside
    what they share), so the projection is centred on the rows' mean state and scaled to their spread, and
    the budget's logits are centred and spread to std 1.5 (budgets from 1 head to all)."""
    from headsearch.models.routing import HeadRouter, RouterSpec

    seen = []
    handle = model._layers()[0].register_forward_pre_hook(
        lambda m, a, k: seen.append(a[0] if a else k["hidden_states"]), with_kwargs=True)
    with torch.no_grad():
        model(ids, mask)
    handle.remove()
    weights = mask[..., None].float()
    pooled = (seen[0] * weights).sum(1) / weights.sum(1)
    center = pooled.mean(0)
    scale = float((pooled - center).norm(dim=1).mean())
    torch.manual_seed(seed)
    router = HeadRouter(RouterSpec.for_model(model.shape, per_layer=False, signal="mean", s_min=0.2, s_max=1.0)).eval()
    spec, projection, out = router.spec, router.projections[0], router.budget_outputs[0]
    with torch.no_grad():
        projection.weight.normal_(std=1.0 / scale / spec.hidden_size ** 0.5)
        projection.bias.copy_(-projection.weight @ center)
        out.weight.normal_(std=1.0 / spec.width ** 0.5)
        s, _ = router._route(0, seen[0], mask)
        p = ((s - spec.s_min) / (spec.s_max - spec.s_min)).clamp(1e-4, 1 - 1e-4)
        z = torch.log(p / (1 - p))
        a = 1.5 / float(z.std())
        out.weight.mul_(a)
        out.bias.copy_(a * (out.bias - z.mean()))
    return router
