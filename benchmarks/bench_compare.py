"""The tuned comparisons behind docs/benchmarks.md's "compare, tuned" tables: `hardmine compare` with every
strategy's learning rate chosen on validation, on a long-tailed and a clean Fashion-MNIST (needs
`apt-get install dataset-fashion-mnist`).

    python benchmarks/bench_compare.py longtail    # MLP, imbalance 100, 12 strategies x 5 runs: ~15 min on 2 cores
    python benchmarks/bench_compare.py clean-mlp   # MLP, 54,000 training images, 6 strategies: ~15 min
    python benchmarks/bench_compare.py clean-cnn   # CNN, 12,000-image subset, 5 strategies: ~20 min
    python benchmarks/bench_compare.py longtail-la # the long-tailed data again, every strategy on the logit-adjusted
                                                   # loss (mining on top of the best plain alternative): ~5 min
    python benchmarks/bench_compare.py longtail --table-only   # print the tables of a finished run

Each runs the command it prints (a rerun resumes the finished runs), then prints a markdown table from the
results.json and the recommendation compare made. Rare-3 recall is the mean test recall of the three classes with
the fewest training samples. Compute is counted as compare counts it (forwards + 2 x backwards); "to target" is
over uniform's own compute to the target; tuning compute (the runs at the rates not chosen) is apart.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GRID = "0.25,0.5,1,2,4"  # factors of lr 0.05: the default grid (0.5,1,2) chose its edge for most strategies here
COMMON = ["--dataset", "fashion-mnist", "--seeds", "3", "--no-progress", "--no-test-curve", "--lr-grid", GRID]
CONFIGS = {
    "longtail": ["--model", "mlp", "--epochs", "10", "--imbalance", "0.01", "--strategies",
                 "uniform,ohem,selective_backprop,importance,focal,prune_easy,class_balanced,class_weighted,"
                 "logit_adjusted,importance+class_balance,ohem+class_balance,rank+class_balance"],
    "clean-mlp": ["--model", "mlp", "--epochs", "10", "--strategies",
                  "uniform,ohem,selective_backprop,importance,focal,prune_easy"],
    "clean-cnn": ["--model", "cnn", "--train-subset", "12000", "--epochs", "6", "--evals-per-epoch", "2",
                  "--strategies", "uniform,ohem,selective_backprop,selective_backprop:beta=2,importance"],
}


LOGIT_ADJUSTED = ["uniform", "ohem", "selective_backprop", "importance"]


def run_logit_adjusted(out: Path) -> None:
    """`hm.compare` on the long-tailed set of "longtail" (the same training, validation and test parts), every
    strategy's per-sample loss the logit-adjusted cross-entropy with the training part's class counts."""
    import torch

    import hardmine as hm
    from hardmine.experiments.data import load_dataset, split_validation, subsample_geometric
    from hardmine.experiments.models import build_model

    data = subsample_geometric(load_dataset("fashion-mnist"), 0.01, 0)
    train = split_validation(data, 0.1, 0).train
    loss = hm.LogitAdjustedLoss(np.bincount(train.y_train, minlength=train.num_classes), reduction="none")
    sets = [torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
            for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test))]
    hm.compare(lambda seed: build_model("mlp", data.input_shape, data.num_classes), *sets,
               strategies=",".join(LOGIT_ADJUSTED), seeds=3, epochs=10, out=out, loss=loss, test_curve=False,
               name=data.name, classes=data.classes, model_label="mlp",
               lr_grid=tuple(float(f) for f in GRID.split(",")))


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else pattern.format(value)


def markdown(results: dict) -> str:
    """The summary of a compare results dict as a markdown table, with the recommendation and warnings under it."""
    counts = np.asarray(results["dataset"]["class_counts_train"])
    rare = np.argsort(counts, kind="stable")[:3]
    metric = results["target"]["metric"].replace("_", " ")
    lines = [f"| strategy | lr | test {metric} ± std | vs uniform, points [95% CI] | rare-3 recall | compute to target "
             "(x uniform's) | reached | compute total | tuning compute | time to target (x uniform's) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in results["summary"]:
        if row["strategy"] == "uniform":
            diff = "-"
        elif row.get("diff_low") is None or not math.isfinite(row["diff_low"]):
            diff = _fmt(100 * row["diff_vs_uniform"], "{:+.2f}")
        else:
            diff = (f"{100 * row['diff_vs_uniform']:+.2f} [{100 * row['diff_low']:+.2f}, {100 * row['diff_high']:+.2f}]"
                    + (" within noise" if row["within_noise"] else ""))
        recall = row.get("per_class_recall")
        rare3 = float(np.mean([recall[c] for c in rare])) if recall else None
        lines.append(
            f"| `{row['strategy']}` | {row['lr']:.3g} | {row['metric_mean']:.4f} ± {row['metric_std']:.4f} | {diff} | "
            f"{_fmt(rare3, '{:.3f}')} | {_fmt(row['compute_vs_uniform'], '{:.2f}x')} | {row['reached']} | "
            f"{_fmt(row['compute_total'], '{:.2f}x')} | {_fmt(row.get('tuning_compute'), '{:.2f}x')} | "
            f"{_fmt(row.get('seconds_vs_uniform'), '{:.2f}x')} |")
    lines.append("")
    lines.append(f"Recommendation: {results['recommendation']}")
    lines.extend(f"Warning: {w}" for w in results.get("warnings", []))
    lines.extend(f"Note: {n}" for n in results.get("notes", []))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=sorted([*CONFIGS, "longtail-la"]))
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="parent of the comparison directories")
    parser.add_argument("--table-only", action="store_true", help="print the table of a finished comparison")
    args = parser.parse_args()
    out = args.out / args.which
    if args.which == "longtail-la":
        if not args.table_only:
            print(f"$ python benchmarks/bench_compare.py longtail-la  # hm.compare(loss=LogitAdjustedLoss(counts), "
                  f"strategies={','.join(LOGIT_ADJUSTED)!r}, seeds=3, epochs=10)", flush=True)
            started = time.perf_counter()
            run_logit_adjusted(out)
            print(f"ran in {time.perf_counter() - started:.0f} s", flush=True)
        print(markdown(json.loads((out / "results.json").read_text())))
        return
    command = [str(Path(sys.executable).with_name("hardmine")), "compare", *COMMON, *CONFIGS[args.which],
               "--out", str(out)]
    if not args.table_only:
        print("$", " ".join(c if " " not in c and "," not in c else f'"{c}"' for c in command[1:]), flush=True)
        started = time.perf_counter()
        subprocess.run(command, check=True)
        print(f"ran in {time.perf_counter() - started:.0f} s", flush=True)
    print(markdown(json.loads((out / "results.json").read_text())))


if __name__ == "__main__":
    main()
