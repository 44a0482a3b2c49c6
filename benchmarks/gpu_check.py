"""Does hardmine make a CUDA training step wait for the GPU? A small CNN step with and without the mining path.

Counts, over `--steps` steps after a warm-up, for the bare step and the mined step (importance and uniform):
- synchronising CUDA calls PyTorch reports (`torch.cuda.set_sync_debug_mode("warn")`: a blocking copy to the host,
  `.item()`, `nonzero`, ...), one warning each;
- hardmine's own waits for its non-blocking loss copies (`torch.cuda.Event.synchronize`, counted by wrapping it):
  deterministic draws need the consumed batches' losses on the host when the next chunk is drawn, so expect about
  one per chunk of batches (and one per epoch start), none per step;
- the step time, wall clock, with `torch.cuda.synchronize()` only around the timed loop.
Indices stay on the CPU (as a DataLoader gives them); images, labels, losses and weights live on the GPU.

    python benchmarks/gpu_check.py               # exits 0 with a message on a machine without CUDA
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import torch
import torch.nn.functional as F

import hardmine as hm


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10)).cuda()


def run(policy: str | None, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int, warmup: int) -> dict:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    n = y.numel()
    if policy is None:
        def batches():
            while True:
                yield from torch.randperm(n).split(batch)
    else:
        sampler = hm.HardExampleSampler(hm.ScoreMemory(n), batch_size=batch, policy=policy, seed=0)

        def batches():
            while True:
                for b in sampler:
                    yield torch.from_numpy(b)
    it = batches()

    def step() -> None:
        idx = next(it)
        gpu_idx = idx.to("cuda", non_blocking=True)
        logits = model(x[gpu_idx])
        if policy is None:
            loss = F.cross_entropy(logits, y[gpu_idx])
        else:
            per_sample = F.cross_entropy(logits, y[gpu_idx], reduction="none")
            sampler.update(idx, per_sample.detach())
            loss = hm.reduce(per_sample, sampler.weights(idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    waits = [0]
    original = torch.cuda.Event.synchronize

    def counted(self) -> None:
        waits[0] += 1
        original(self)

    torch.cuda.Event.synchronize = counted
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.perf_counter()
            for _ in range(steps):
                step()
            torch.cuda.set_sync_debug_mode("default")
            torch.cuda.synchronize()
            seconds = time.perf_counter() - start
    finally:
        torch.cuda.set_sync_debug_mode("default")
        torch.cuda.Event.synchronize = original
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    where = sorted({f"{w.filename.rsplit('/', 1)[-1]}:{w.lineno}" for w in syncs})
    return {"ms": 1e3 * seconds / steps, "syncs": len(syncs), "where": where, "waits": waits[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: CUDA is not available on this machine; nothing to check (run it where a GPU is).")
        return 0
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60_000, 1, 28, 28, generator=g).cuda()
    y = torch.randint(0, 10, (60_000,), generator=g).cuda()
    print(f"hardmine gpu_check: torch {torch.__version__}, {torch.cuda.get_device_name()}, small CNN, "
          f"B = {args.batch_size}, {args.steps} timed steps")
    print(f"{'step':<12} {'ms/step':>8} {'sync warnings':>14} {'hardmine waits':>15}  where")
    bare = run(None, x, y, args.batch_size, args.steps, args.warmup)
    rows = {"bare": bare}
    for policy in ("uniform", "importance"):
        rows[policy] = run(policy, x, y, args.batch_size, args.steps, args.warmup)
    for name, r in rows.items():
        print(f"{name:<12} {r['ms']:>8.3f} {r['syncs']:>14} {r['waits']:>15}  {', '.join(r['where'][:4])}")
    extra = max(rows[p]["syncs"] for p in ("uniform", "importance")) - bare["syncs"]
    print(f"synchronising calls hardmine adds over {args.steps} steps: {extra} "
          f"({'none per step' if extra < args.steps / 2 else 'at least one every other step'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
