"""Rho-1 in small: token selection (top_loss, excess_loss) and sample-level rho_loss against uniform on a causal LM.

A standalone measurement (not a unit test). Text: WordNet noun glosses with their examples (Debian wordnet-base); a
BPE trained with `tokenizers` on the training and reference text; a GPT-2 (transformers) trained from scratch on
the CPU. The training mix is clean glosses with low-value tokens inserted (about 40% of the label tokens): spans of
random tokens, boilerplate repeated across documents, and the shuffled tokens of another gloss. A reference model
of the same shape is trained on a small clean set of other glosses; its token losses over the training set are
stored once in a memory-mapped `hm.llm.TokenLossStore` (those forwards are counted in every run that reads it).
Evaluation: the mean loss per label token on held-out clean glosses.

Compute is counted as the issue asks: tokens forwarded (the model's, a scoring pass's, the reference's) + 2 x
tokens back-propagated (the selected label tokens). The reference's training is reported beside it, not in it.
The split and the reference are fixed (--data-seed); a seed draws the noise, the initial weights and the order of
batches, the same for every strategy of that seed, and the strategies of a seed run one after the other in one
process. A run reaches uniform's final held-out loss (that seed's) at its first evaluation (every --eval-every
steps) at or below it: the compute there is an upper bound of the crossing's.

    PYTHONPATH=src python benchmarks/bench_llm_tokens.py --out build/llm --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel

import hardmine as hm
from hardmine.datasets.wordnet import load_wordnet_nouns
from hardmine.experiments.metrics import paired_interval
from hardmine.llm import ReferenceModel, TokenLossStore, TokenSelector, sequence_losses, token_losses

PAD, BOS, EOS = 0, 1, 2
BOILERPLATE = ["click here to subscribe to our newsletter for the latest updates and offers",
               "all rights reserved no part of this page may be reproduced without permission",
               "this page was last edited on monday at noon terms of use privacy policy"]


def tokenizer(texts: list[str], vocab: int) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab, show_progress=False,
                                                       special_tokens=["[PAD]", "[BOS]", "[EOS]", "[UNK]"]))
    return tok


def encode(tok: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tok.encode_batch(texts)]


def pack(rows: list[list[int]], length: int) -> dict[str, torch.Tensor]:
    """[BOS] row [EOS] cut to `length`, right-padded; labels -100 on padding."""
    ids = torch.full((len(rows), length), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        seq = ([BOS] + r + [EOS])[:length]
        ids[i, :len(seq)] = torch.tensor(seq)
    attention = (ids != PAD).long()
    return {"input_ids": ids, "attention_mask": attention, "labels": ids.masked_fill(attention == 0, -100)}


def noisy(rows: list[list[int]], boiler: list[list[int]], vocab: int, share: float, length: int,
          rng: np.random.Generator) -> tuple[list[list[int]], np.ndarray]:
    """Each row with one span of low-value tokens inserted at a random place, of share/(1-share) of its clean
    length: random tokens, a boilerplate sentence, or another row's tokens shuffled (a third each). Returns the rows
    and a bool [len, length] marking the noise tokens at their packed positions (BOS first)."""
    out, marks = [], np.zeros((len(rows), length), dtype=bool)
    for i, r in enumerate(rows):
        clean = r[: int((length - 2) * (1 - share))]
        n = max(1, round(len(clean) * share / (1 - share)))
        kind = rng.integers(3)
        if kind == 0:
            span = rng.integers(4, vocab, n).tolist()
        elif kind == 1:
            b = boiler[rng.integers(len(boiler))]
            span = (b * (n // len(b) + 1))[:n]
        else:
            other = rows[rng.integers(len(rows))]
            span = rng.permutation(other)[:n].tolist() if other else [4] * n
            span = span + rng.integers(4, vocab, n - len(span)).tolist()
        at = int(rng.integers(len(clean) + 1))
        out.append(clean[:at] + span + clean[at:])
        start = 1 + at
        marks[i, start: min(length, start + len(span))] = True
    return out, marks


def gpt2(vocab: int, length: int, layers: int, width: int, seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab, n_positions=length, n_embd=width, n_layer=layers, n_head=4,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=BOS, eos_token_id=EOS)
    return GPT2LMHeadModel(config)


def heldout_loss(model: GPT2LMHeadModel, data: dict[str, torch.Tensor], batch: int = 128) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data["input_ids"]), batch):
            part = {k: v[i: i + batch] for k, v in data.items()}
            loss, mask = token_losses(model(input_ids=part["input_ids"],
                                            attention_mask=part["attention_mask"]).logits, part["labels"])
            total, count = total + float(loss.sum()), count + int(mask.sum())
    model.train()
    return total / count


def train_reference(d: dict, args, seed: int) -> tuple[GPT2LMHeadModel, int]:
    """The reference, of the trained model's shape, on the clean set (AdamW, cosine; --ref-epochs passes over it);
    returns it and its training compute (3 x tokens)."""
    model = gpt2(args.vocab, args.length, args.layers, args.width, seed + 100)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    data, n = d["reference"], len(d["reference"]["input_ids"])
    rng = np.random.default_rng(seed + 100)
    steps = args.ref_epochs * (n // args.batch)
    spent, k = 0, 0
    for _ in range(args.ref_epochs):  # noqa: B007
        order = rng.permutation(n)
        for j in range(n // args.batch):
            idx = torch.from_numpy(order[j * args.batch:(j + 1) * args.batch])
            for g in opt.param_groups:
                g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * k / steps))
            out = model(input_ids=data["input_ids"][idx], attention_mask=data["attention_mask"][idx])
            loss, mask = token_losses(out.logits, data["labels"][idx])
            opt.zero_grad()
            TokenSelector.reduce(loss, mask.float()).backward()
            opt.step()
            spent += 3 * int(data["attention_mask"][idx].sum())
            k += 1
        print(f"  reference epoch {_ + 1}/{args.ref_epochs}: training loss {float(loss.sum() / mask.sum()):.3f}",
              flush=True)
    return model.eval(), spent


def run(name: str, d: dict, args, seed: int, store: TokenLossStore, store_cost: int, seq_ref: np.ndarray) -> dict:
    model = gpt2(args.vocab, args.length, args.layers, args.width, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    train = d["train"]
    n = len(train["input_ids"])
    kind, _, keep = name.partition("@")
    if kind == "rho_loss":
        policy = hm.build_policy("rho_loss", irreducible_loss=seq_ref, candidates=args.candidates)
    else:
        policy = hm.build_policy("uniform")
        selector = TokenSelector(keep=float(keep) if keep else 1.0,
                                 rule="excess_loss" if kind == "excess_loss" else "top_loss")
    sampler = hm.HardExampleSampler(hm.ScoreMemory(n), args.batch, policy=policy, seed=seed, drop_last=True)
    steps = args.epochs * len(sampler)
    reference_cost = store_cost if kind in ("excess_loss", "rho_loss") else 0
    forwards = backwards = noise_kept = kept = 0
    curve = {"step": [], "compute": [], "compute_on_the_fly": [], "heldout": []}
    started, k = time.perf_counter(), 0
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        for idx in sampler:
            for g in opt.param_groups:
                g["lr"] = args.lr * min(1.0, (k + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * k / steps))
            idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
            batch = {key: v[idx] for key, v in train.items()}
            if kind == "rho_loss":  # score the candidates without gradient, back-propagate the B selected
                with torch.no_grad():
                    loss, mask = token_losses(model(input_ids=batch["input_ids"],
                                                    attention_mask=batch["attention_mask"]).logits, batch["labels"])
                forwards += int(batch["attention_mask"].sum())
                sampler.update(idx, sequence_losses(loss, mask))
                chosen = sampler.weights(idx) > 0
                idx, batch = idx[chosen], {key: v[chosen] for key, v in batch.items()}
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            loss, mask = token_losses(out.logits, batch["labels"])
            if kind == "rho_loss":
                weights = mask.float()
            else:
                sampler.update(idx, sequence_losses(loss.detach(), mask))
                reference = store.read(idx, mask) if kind == "excess_loss" else None
                weights = selector(loss.detach(), mask, reference)
            opt.zero_grad()
            TokenSelector.reduce(loss, weights).backward()
            opt.step()
            forwards += int(batch["attention_mask"].sum())
            backwards += int(weights.sum())
            kept += int(weights.sum())
            noise_kept += int((weights.bool() & train["noise"][idx]).sum())
            k += 1
            if k % args.eval_every == 0 or k == steps:
                curve["step"].append(k)
                curve["compute"].append(forwards + 2 * backwards + reference_cost)
                on_the_fly = forwards if kind == "excess_loss" else reference_cost  # a frozen reference on each batch
                curve["compute_on_the_fly"].append(forwards + 2 * backwards + on_the_fly)
                curve["heldout"].append(heldout_loss(model, d["heldout"]))
                print(f"  seed {seed} {name:>16} step {k:5d}/{steps} held-out {curve['heldout'][-1]:.4f} "
                      f"({time.perf_counter() - started:.0f}s)", flush=True)
    return {"strategy": name, "seed": seed, "final": curve["heldout"][-1], "compute": curve["compute"][-1],
            "reference_compute": reference_cost, "seconds": time.perf_counter() - started,
            "noise_share_of_kept": noise_kept / max(kept, 1), "curve": curve}


def prepare(args) -> dict:
    """The split (fixed by --data-seed), the BPE trained on the training and reference text, the packed clean
    reference and held-out sets, and the training rows before noise."""
    nouns = load_wordnet_nouns(args.wordnet, examples=True)
    order = np.random.default_rng(args.data_seed).permutation(len(nouns))
    parts = np.split(order[: args.train + args.reference + args.heldout], [args.train, args.train + args.reference])
    texts = [[nouns.glosses[i].replace('"', "") for i in part] for part in parts]
    tok = tokenizer(texts[0] + texts[1] + BOILERPLATE, args.vocab)
    train_rows, reference_rows, heldout_rows = (encode(tok, t) for t in texts)
    return {"train_rows": train_rows, "boiler": encode(tok, BOILERPLATE),
            "reference": pack(reference_rows, args.length), "heldout": pack(heldout_rows, args.length)}


def noisy_train(d: dict, args, seed: int) -> dict[str, torch.Tensor]:
    """The training mix of this seed: each row with its noise span (drawn from the seed), packed, with "noise"
    [N, T] marking the positions whose predicted token is noise."""
    rows, marks = noisy(d["train_rows"], d["boiler"], args.vocab, args.noise, args.length,
                        np.random.default_rng(1000 + seed))
    train = pack(rows, args.length)
    label = np.zeros_like(marks)  # position t is trained on token t + 1: noise is what is predicted there
    label[:, :-1] = marks[:, 1:]
    train["noise"] = torch.from_numpy(label)
    return train


def summarize(runs: list[dict], strategies: list[str]) -> list[dict]:
    base = {r["seed"]: r for r in runs if r["strategy"] == "uniform"}
    rows = []
    for s in strategies:
        mine = [r for r in runs if r["strategy"] == s]
        finals = [r["final"] for r in mine]
        diffs = [r["final"] - base[r["seed"]]["final"] for r in mine]
        mean_diff, _, high = paired_interval([r["final"] for r in mine], [base[r["seed"]]["final"] for r in mine])
        half = high - mean_diff if len(diffs) > 1 else 0.0
        reach, reach_fly = [], []
        for r in mine:
            b = base[r["seed"]]
            target, total = b["final"], b["compute"]
            for key, out in (("compute", reach), ("compute_on_the_fly", reach_fly)):
                hit = next((c for v, c in zip(r["curve"]["heldout"], r["curve"][key]) if v <= target + 1e-12),
                           None)
                out.append(None if hit is None else hit / total)
        rows.append({"strategy": s, "final_mean": float(np.mean(finals)), "final_std": float(np.std(finals, ddof=1))
                     if len(finals) > 1 else 0.0, "diff": float(np.mean(diffs)), "half": float(half),
                     "compute_ratio": float(np.mean([r["compute"] / base[r["seed"]]["compute"] for r in mine])),
                     "to_target": reach, "to_target_on_the_fly": reach_fly,
                     "noise_share": float(np.mean([r["noise_share_of_kept"] for r in mine])),
                     "seconds": float(np.mean([r["seconds"] for r in mine]))})
    return rows


def show(values: list) -> str:
    return ", ".join("—" if v is None else f"{v:.2f}x" for v in values)


def table(rows: list[dict]) -> str:
    out = ["| strategy | held-out loss (mean ± std) | vs uniform, paired 95% | total compute | compute to uniform's "
           "final loss, per seed (store) | same, reference on the fly | noise share of kept tokens | s/run |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['strategy']} | {r['final_mean']:.4f} ± {r['final_std']:.4f} | {r['diff']:+.4f} ± "
                   f"{r['half']:.4f} | {r['compute_ratio']:.2f}x | {show(r['to_target'])} | "
                   f"{show(r['to_target_on_the_fly'])} | {r['noise_share']:.3f} | {r['seconds']:.0f} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="build/llm")
    p.add_argument("--wordnet", default="/usr/share/wordnet")
    p.add_argument("--data-seed", type=int, default=0, help="the split and the reference model")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--strategies", nargs="+", default=["uniform", "excess_loss@0.4", "excess_loss@0.6",
                                                       "top_loss@0.6", "rho_loss"])
    p.add_argument("--train", type=int, default=2400)
    p.add_argument("--reference", type=int, default=2400)
    p.add_argument("--heldout", type=int, default=256)
    p.add_argument("--noise", type=float, default=0.4, help="share of a training row's tokens that are noise")
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--length", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--ref-epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--candidates", type=int, default=2)
    p.add_argument("--eval-every", type=int, default=30,
                   help="steps between held-out evaluations; the target is read at them (an upper bound)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs, started = [], time.perf_counter()
    d = prepare(args)
    reference, ref_train = train_reference(d, args, args.data_seed)
    ref_loss = heldout_loss(reference, d["heldout"])
    print(f"reference: held-out loss {ref_loss:.4f}, training compute {ref_train:.3g} "
          f"({time.perf_counter() - started:.0f}s)", flush=True)
    for seed in args.seeds:
        d["train"] = train = noisy_train(d, args, seed)
        share = float(train["noise"].sum() / (train["labels"] != -100)[:, 1:].sum())
        print(f"seed {seed}: {len(train['input_ids'])} training rows, noise {share:.2f} of label tokens", flush=True)
        wrapped, n = ReferenceModel(reference), len(train["input_ids"])
        batches = ((torch.arange(i, min(i + 256, n)), {"input_ids": train["input_ids"][i: i + 256],
                                                       "attention_mask": train["attention_mask"][i: i + 256]},
                    train["labels"][i: i + 256]) for i in range(0, n, 256))
        store = TokenLossStore.build(out / f"reference-seed{seed}.npy", wrapped, batches, n, args.length)
        store_cost = int(train["attention_mask"].sum())  # one reference forward of every training token
        mask = train["labels"] != -100
        mask[:, :-1] = mask[:, 1:].clone()
        mask[:, -1] = False
        seq_ref = sequence_losses(store.read(torch.arange(n), mask), mask).numpy()
        for name in args.strategies:
            r = run(name, d, args, seed, store, store_cost, seq_ref)
            r["reference_training"], r["reference_heldout"] = ref_train, ref_loss
            runs.append(r)
            print(f"seed {seed} {name}: final held-out {r['final']:.4f}, compute {r['compute']:.3g} "
                  f"({time.perf_counter() - started:.0f}s total)", flush=True)
        (out / "runs.json").write_text(json.dumps({"args": vars(args), "runs": runs}, indent=1))
    rows = summarize(runs, args.strategies)
    text = table(rows)
    excess = [r for r in rows if r["strategy"].startswith("excess_loss")]
    best = min(excess, key=lambda r: max(math.inf if v is None else v for v in r["to_target"])) if excess else None
    if best is not None:
        worst = max(math.inf if v is None else v for v in best["to_target"])
        met = sum(v is not None and v <= 0.5 for v in best["to_target"])
        text += (f"\n\nGoal (excess_loss reaches uniform's final held-out loss with <= 0.5x of its compute in 3/3 "
                 f"seeds): {'met' if met == len(best['to_target']) else 'missed'} — best {best['strategy']}: "
                 f"{show(best['to_target'])} ({met}/{len(best['to_target'])} seeds at <= 0.5x; worst {worst:.2f}x)")
    base = [r for r in runs if r["strategy"] == "uniform"]
    text += (f"\n\nReference: held-out loss {ref_loss:.4f}; its training ({ref_train:.3g} counted tokens) is "
             f"{ref_train / np.mean([r['compute'] for r in base]):.2f}x of a uniform run's compute, not included "
             f"above. Wall time {time.perf_counter() - started:.0f}s.")
    print(text)
    (out / "table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
