"""CAHP's chosen configurations against gradient importance at the same number of heads.

For a study's dense model (the run folder's cached model is reused, or trained), CAHP selects heads
under several settings: the authors' (t-SNE with scikit-learn's PCA start, JM, MSS knee, degree 6),
t-SNE from a random start for several seeds (how far the knee moves), PCA, spectral, and the accuracy
curve variant. For each selection, one-shot Michel importance (the ``importance`` strategy's default,
layer-normalised) keeps the same number of heads. Both configurations are measured on the search split
(dev) as gated dense models, then structurally pruned and recovered with the same fine-tuning budget
(``--recovery-epochs`` on ``--recovery-rows`` seeded training rows) and measured on dev and test.

    python benchmarks/cahp.py studies/sst2_minilm.yaml --out runs/sst2_minilm
"""

from __future__ import annotations

import statistics
import time

import torch
from _study import open_study, study_parser

from headsearch.cost import count_flops
from headsearch.heads import HeadConfig
from headsearch.models import accuracy
from headsearch.models.training import TrainConfig, recover
from headsearch.strategies._training import training_rows
from headsearch.strategies.cahp import CAHPSettings, select


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="t-SNE random-start seeds")
    parser.add_argument("--recovery-epochs", type=int, default=1)
    parser.add_argument("--recovery-rows", type=int, default=2000)
    parser.add_argument("--recovery-lr", type=float, default=None, help="default: the dense model's training learning rate")
    parser.add_argument("--recover-seeds", action="store_true", help="also recover the seed-spread rows")
    args = parser.parse_args(argv)
    config, context, test = open_study(args)
    dense = context.dense
    L, H = context.num_layers, context.num_heads
    dev = context.search
    lr = args.recovery_lr or dense.meta["training"]["config"]["learning_rate"]  # the dense model's own
    rows = training_rows(context, args.recovery_rows)  # the rows the strategy's own recovery uses
    spec = dense.model.shape
    dense_flops = count_flops(spec, HeadConfig.dense(L, H), config.hardware.seq_len).total
    print(f"model {config.model.source} {L}x{H}; signatures and salience on {context.scoring.name} "
          f"({len(context.scoring)} rows); dev {dev.name} ({len(dev)}), test ({len(test)}); recovery "
          f"{args.recovery_epochs} epoch(s) on {len(rows)} train rows, lr {lr:g}; {args.threads} threads")
    print(f"dense: dev {accuracy(dense, dev):.4f}, test {accuracy(dense, test):.4f}")

    runs = [("t-SNE, PCA start (authors')", {}, True)]
    runs += [(f"t-SNE, random start, seed {s}", {"tsne_init": "random", "seed": s}, args.recover_seeds)
             for s in range(args.seeds)]
    runs += [("PCA", {"embedding": "pca"}, True), ("spectral", {"embedding": "spectral"}, True),
             ("t-SNE, accuracy curve", {"curve": "accuracy"}, True)]
    importance = context.importance().tolist()

    def measure(cfg: HeadConfig, do_recover: bool) -> dict[str, float]:
        out = {"dev": accuracy(dense, dev, gates=torch.tensor(cfg.mask()))}
        if do_recover:
            model = recover(dense, cfg, rows, TrainConfig(epochs=args.recovery_epochs, learning_rate=lr, seed=context.seed))
            out |= {"dev_rec": accuracy(model, dev), "test_rec": accuracy(model, test)}
        return out

    print("\n| setting | k | knee | heads | per layer | FLOPs ratio | CAHP dev | CAHP dev recovered | CAHP test recovered "
          "| importance dev | importance dev recovered | importance test recovered | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    spread = []
    for label, kw, do_recover in runs:
        start = time.monotonic()
        sel = select(context, CAHPSettings(**kw))
        cfg = sel.head_config
        imp = HeadConfig.top(importance, cfg.total_kept)
        a, b = measure(cfg, do_recover), measure(imp, do_recover)
        if "seed" in kw:
            spread.append((sel.k, cfg.total_kept, a["dev"]))
        ratio = count_flops(spec, cfg, config.hardware.seq_len).total / dense_flops

        def cell(m, key):
            return f"{m[key]:.4f}" if key in m else "-"

        print(f"| {label} | {sel.k} | {sel.knee.fallback or 'kneedle'} | {cfg.total_kept}/{L * H} | "
              f"{' '.join(str(len(h)) for h in cfg.kept)} | {ratio:.3f} | {cell(a, 'dev')} | {cell(a, 'dev_rec')} | "
              f"{cell(a, 'test_rec')} | {cell(b, 'dev')} | {cell(b, 'dev_rec')} | {cell(b, 'test_rec')} | "
              f"{time.monotonic() - start:.0f} |", flush=True)
    if spread:
        ks, heads, accs = zip(*spread, strict=True)
        print(f"\nt-SNE random start over {len(spread)} seeds: k {min(ks)}-{max(ks)} (median {statistics.median(ks)}), "
              f"heads {min(heads)}-{max(heads)}, CAHP dev accuracy before recovery {min(accs):.4f}-{max(accs):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
