"""Do mined hard negatives help? Fine-tune all-MiniLM-L6-v2 on WordNet gloss -> lemma with
MultipleNegativesRankingLoss, four ways, several seeds:

  in-batch     (anchor, positive) rows: the other rows' positives are the only negatives
  mined        + 1 hard negative per row mined by hm.retrieval.mine_from_dataset with relative_margin 0.05
  rescored     + 1 hard negative mined the same way after re-scoring the candidates (see `GlossRescorer`)
  refresh      as mined, re-mined with the model being trained every --refresh-every steps
               (hm.retrieval.RefreshNegativesCallback)

A subset of --synsets noun synsets is drawn (seed 0); its glosses are split into --train training queries and
--test held-out ones; the corpus is every distinct lemma of the subset. Recall@k on the held-out glosses: a hit when
any lemma of the gloss's synset is among the top k of the corpus. Rows whose query has no negative left after the
margin get a uniformly drawn corpus lemma instead, so every condition trains on the same (anchor, positive) pairs.
Results are appended to --out (JSON) after every run.

    python examples/wordnet_hard_negatives.py --wordnet /usr/share/wordnet --out build/finetune.json
    # the table in docs/retrieval.md: these defaults (4,000 synsets, 1,000 training pairs, 600 held out, seeds 0 1 2,
    # refresh every 12 steps); seed 2 was run as a second process (--seeds 2) to finish in time
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # torch and faiss each bring an OpenMP runtime
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402

from hardmine.atomic import write_json  # noqa: E402
from hardmine.datasets.wordnet import load_wordnet_nouns  # noqa: E402
from hardmine.retrieval import RefreshNegativesCallback, mine_from_dataset  # noqa: E402
from hardmine.retrieval.encode import encode_side, load_encoder  # noqa: E402

CONDITIONS = ("in-batch", "mined", "rescored", "refresh")


class LookupModel:
    """`encode` served from precomputed embeddings of the base model (text -> row), so mining for the static
    conditions does not encode again; unknown texts are encoded by `model`."""

    def __init__(self, table: dict[str, np.ndarray], model) -> None:
        self.table, self.model = table, model

    def encode(self, texts, **kwargs):
        missing = [t for t in texts if t not in self.table]
        if missing:
            for t, e in zip(missing, encode_side(self.model, missing, "document", 128, progress=False)):
                self.table[t] = e
        return np.stack([self.table[t] for t in texts])


class GlossRescorer:
    """Re-scores (gloss, lemma) pairs with what WordNet knows: the mean of the bi-encoder score and the best
    MiniLM similarity between the query gloss and the glosses of the synsets the lemma belongs to. A candidate
    lemma that also names a synset whose gloss says the same thing as the query's scores close to the positive
    and is dropped by the margin: the false negatives a cross-encoder is used to catch. (No cross-encoder ships
    offline; this is the stand-in, and it sees WordNet's lemma -> synset table.)"""

    def __init__(self, queries, corpus, gloss_emb_of_query, lemma_emb, synsets_of_lemma, gloss_emb) -> None:
        self.q = np.stack([gloss_emb_of_query[t] for t in queries])
        self.c = np.stack([lemma_emb[t] for t in corpus])
        lists = [synsets_of_lemma[t] for t in corpus]
        self.offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum([len(x) for x in lists], out=self.offsets[1:])
        self.flat = np.concatenate(lists).astype(np.int64)
        self.gloss = gloss_emb
        self.pairs = 0

    def __call__(self, qi: np.ndarray, ci: np.ndarray) -> np.ndarray:
        self.pairs += len(qi)
        bi = np.einsum("ij,ij->i", self.q[qi], self.c[ci])
        counts = self.offsets[ci + 1] - self.offsets[ci]
        rows = np.repeat(np.arange(len(qi)), counts)
        syn = self.flat[np.concatenate([np.arange(self.offsets[c], self.offsets[c + 1]) for c in ci])]
        sims = np.einsum("ij,ij->i", self.q[qi][rows], self.gloss[syn])
        best = np.full(len(qi), -1.0)
        np.maximum.at(best, rows, sims)
        return 0.5 * (bi + best)


def recall_at(model, queries, corpus, positives, ks=(1, 10)) -> dict[str, float]:
    q = torch.from_numpy(encode_side(model, queries, "query", 128, progress=False))
    c = torch.from_numpy(encode_side(model, corpus, "document", 256, progress=False))
    top = torch.topk(q @ c.T, max(ks), dim=1).indices.numpy()
    return {f"recall@{k}": float(np.mean([bool(set(row[:k].tolist()) & pos) for row, pos in zip(top, positives)]))
            for k in ks}


def with_fallback(mined, texts, rng) -> Dataset:
    """(anchor, positive, negative) rows for every training row: the mined negative, or a random lemma."""
    m, t = mined.mined, mined.texts
    neg = m.indices[:, 0].copy()
    missing = neg < 0
    for q in np.flatnonzero(missing):  # a uniformly drawn lemma that is not one of the query's positives
        own = set(t.positives.row(q).tolist())
        while neg[q] < 0 or neg[q] in own:
            neg[q] = rng.integers(len(t.corpus))
    q_of = t.row_query
    return Dataset.from_dict({"anchor": texts["anchor"], "positive": texts["positive"],
                              "negative": [t.corpus[neg[q]] for q in q_of]}), int(missing.sum())


def train(condition, seed, base_rows, mined_rows, corpus, args) -> tuple[object, dict]:
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    torch.manual_seed(seed)
    model = load_encoder()
    ds = base_rows if condition == "in-batch" else mined_rows[condition if condition != "refresh" else "mined"]
    callbacks = []
    if condition == "refresh":
        cb = RefreshNegativesCallback(ds, corpus=corpus, refresh_every=args.refresh_every, relative_margin=0.05,
                                      range_max=args.range_max, batch_size=128)
        callbacks.append(cb)
    targs = SentenceTransformerTrainingArguments(
        output_dir=str(Path(args.work) / f"{condition}-{seed}"), num_train_epochs=1,
        per_device_train_batch_size=args.batch_size, learning_rate=args.lr, warmup_ratio=0.1, seed=seed,
        save_strategy="no", report_to=[], logging_steps=10_000, use_cpu=True, dataloader_num_workers=0,
        batch_sampler=BatchSamplers.NO_DUPLICATES, disable_tqdm=True)
    trainer = SentenceTransformerTrainer(model=model, args=targs, train_dataset=ds,
                                         loss=losses.MultipleNegativesRankingLoss(model), callbacks=callbacks)
    started = time.perf_counter()
    trainer.train()
    info = {"train_seconds": time.perf_counter() - started, "steps": trainer.state.global_step,
            "rows": len(ds), "texts_per_row": len(ds.column_names)}
    if callbacks:
        cb = callbacks[0]
        info["refreshes"] = [{"step": r.step, "reason": r.reason, "changed": r.fraction_changed}
                             for r in cb.history]
    return model, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", default="/usr/share/wordnet")
    parser.add_argument("--embeddings", default="build/wordnet",
                        help="folder with lemmas.npy / glosses.npy (base MiniLM of every noun lemma and gloss, "
                             "in WordNetNouns order); encoded and written there when missing")
    parser.add_argument("--synsets", type=int, default=4000)
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--test", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--range-max", type=int, default=50)
    parser.add_argument("--refresh-every", type=int, default=12)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default="build/finetune-runs")
    parser.add_argument("--out", default="build/finetune.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    wn = load_wordnet_nouns(args.wordnet)
    full = wn.retrieval_task()
    emb_dir = Path(args.embeddings)
    if not (emb_dir / "lemmas.npy").is_file():
        base = load_encoder()
        emb_dir.mkdir(parents=True, exist_ok=True)
        np.save(emb_dir / "lemmas.npy", encode_side(base, full.corpus, "document", 256))
        np.save(emb_dir / "glosses.npy", encode_side(base, full.queries, "query", 256))
    lemma_emb_all, gloss_emb_all = np.load(emb_dir / "lemmas.npy"), np.load(emb_dir / "glosses.npy")
    lemma_emb = dict(zip(full.corpus, lemma_emb_all))
    gloss_emb = {g: e for g, e in zip(full.queries, gloss_emb_all)}
    synsets_of_lemma: dict[str, list[int]] = {}
    for row, lemmas in enumerate(wn.lemmas):
        for lemma in lemmas:
            synsets_of_lemma.setdefault(lemma, []).append(row)

    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(wn), args.synsets, replace=False))
    order = rng.permutation(rows)
    train_rows, test_rows = order[:args.train], order[args.train:args.train + args.test]
    corpus = sorted({lemma for r in rows for lemma in wn.lemmas[r]})
    corpus_id = {t: i for i, t in enumerate(corpus)}
    test_q = [wn.glosses[r] for r in test_rows]
    test_pos = [{corpus_id[lemma] for lemma in wn.lemmas[r]} for r in test_rows]
    # one row per training synset: its gloss and its first lemma
    texts = {"anchor": [wn.glosses[r] for r in train_rows], "positive": [wn.lemmas[r][0] for r in train_rows]}
    base_rows = Dataset.from_dict(texts)
    results: dict = {"setup": {**vars(args), "corpus": len(corpus), "train_rows": len(train_rows),
                               "test_queries": len(test_rows)}, "runs": []}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    lookup = LookupModel({**lemma_emb, **gloss_emb}, None)
    q = np.stack([gloss_emb[t] for t in test_q])
    c = np.stack([lemma_emb[t] for t in corpus])
    top = np.argsort(-(q @ c.T), axis=1)[:, :10]
    base_recall = {f"recall@{k}": float(np.mean([bool(set(r[:k].tolist()) & p) for r, p in zip(top, test_pos)]))
                   for k in (1, 10)}
    results["base"] = base_recall
    print(f"corpus {len(corpus)} lemmas, {len(train_rows)} training / {len(test_rows)} held-out glosses; "
          f"base MiniLM {base_recall}", flush=True)

    mined_rows, mining = {}, {}
    for name in ("mined", "rescored"):
        if name not in args.conditions and not (name == "mined" and "refresh" in args.conditions):
            continue
        rescorer = _rescorer(base_rows, corpus, gloss_emb, lemma_emb, synsets_of_lemma, gloss_emb_all) \
            if name == "rescored" else None
        started = time.perf_counter()
        got = mine_from_dataset(base_rows, lookup, corpus=corpus, num_negatives=1, relative_margin=0.05,
                                range_max=args.range_max, output_format="n-tuple", verbose=False,
                                return_mined=True, cross_encoder=rescorer)
        seconds = time.perf_counter() - started
        mined_rows[name], fallback = with_fallback(got[1], texts, np.random.default_rng(1))
        summary = got[1].mined.summary()
        mining[name] = {"seconds": seconds, "fallback_rows": fallback, **summary,
                        "rescored_pairs": 0 if rescorer is None else rescorer.pairs}
        print(f"{name}: {summary['negatives_found']} of {summary['queries']} queries got a negative, "
              f"{fallback} fell back to a random lemma; {seconds:.1f}s", flush=True)
    results["mining"] = mining

    for seed in args.seeds:
        for condition in args.conditions:
            model, info = train(condition, seed, base_rows, mined_rows, corpus, args)
            started = time.perf_counter()
            rec = recall_at(model, test_q, corpus, test_pos)
            info["eval_seconds"] = time.perf_counter() - started
            results["runs"].append({"condition": condition, "seed": seed, **rec, **info})
            write_json(out, results)
            print(f"{condition} seed {seed}: {rec} ({info['train_seconds']:.0f}s train)", flush=True)
    table = {}
    for condition in args.conditions:
        runs = [r for r in results["runs"] if r["condition"] == condition]
        table[condition] = {k: (float(np.mean([r[k] for r in runs])), float(np.std([r[k] for r in runs])),
                                float(np.min([r[k] for r in runs])), float(np.max([r[k] for r in runs])))
                            for k in ("recall@1", "recall@10")}
        print(condition, {k: f"{m:.3f} +- {s:.3f} [{lo:.3f}, {hi:.3f}]" for k, (m, s, lo, hi) in
                          table[condition].items()}, flush=True)
    results["table"] = table
    write_json(out, results)


def _rescorer(base_rows, corpus, gloss_emb, lemma_emb, synsets_of_lemma, gloss_emb_all):
    """mine_from_dataset calls the rescorer with ids over its deduplicated texts; rebuild the lookup tables in
    that order once (queries: distinct anchors in order, corpus: distinct corpus + positives in order)."""
    from hardmine.retrieval.texts import TextPairs

    t = TextPairs.from_rows(base_rows["anchor"], base_rows["positive"], corpus)
    return GlossRescorer(t.queries, t.corpus, gloss_emb, lemma_emb, synsets_of_lemma, gloss_emb_all)


if __name__ == "__main__":
    main()
