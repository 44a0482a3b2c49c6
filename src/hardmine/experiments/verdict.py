"""The verdict of a comparison in words: one recommendation, the warnings that qualify it, and the findings.

The recommendation names one strategy. A candidate is any strategy but uniform that neither collapsed nor diverged
in any seed and does not end worse than uniform beyond noise (with one seed: not worse at all), and that pays: it
ends above uniform beyond noise, or it reaches uniform's target in the median seed with less compute than uniform
needs to reach it. Candidates that end above beyond noise come first (those that no other such candidate beats on
both final metric and compute to target, then the largest lower bound of the interval first), then the others by
compute to target. The practitioner's alternatives (ALTERNATIVES: class-balanced
sampling, class-weighted and logit-adjusted losses) compete as candidates but are not mining: when one wins, or no
candidate pays, the recommendation reads "mining does not pay on this data: use Y".
"""

from __future__ import annotations

import math
from typing import Any

from hardmine.experiments.metrics import BASELINE

ALTERNATIVES = ("class_balanced", "class_weighted", "logit_adjusted", "balanced_softmax")
MIN_SEEDS = 3
MIN_VALIDATION = 500
_METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro-F1"}


def metric_name(results: dict[str, Any]) -> str:
    """The target metric in words ("accuracy", "balanced accuracy", "macro-F1")."""
    return _METRIC_NAMES.get(results["target"].get("metric", "accuracy"), "accuracy")


def is_alternative(label: str) -> bool:
    """True when the strategy `label` is one of the non-mining ALTERNATIVES (by its strategy name)."""
    return label.split("+", 1)[0].split(":", 1)[0] in ALTERNATIVES


def _worse_beyond_noise(row: dict[str, Any]) -> bool:
    diff = row.get("diff_vs_uniform")
    if diff is None or not math.isfinite(diff):
        return True
    return diff < 0 and row.get("within_noise") is not True


def _above_beyond_noise(row: dict[str, Any]) -> bool:
    return row.get("within_noise") is False and row["diff_vs_uniform"] > 0


def _saves(row: dict[str, Any]) -> bool:
    ratio = row.get("compute_vs_uniform")
    return ratio is not None and ratio < 1.0


def _dominated(row: dict[str, Any], others: list[dict[str, Any]]) -> bool:
    """True when another row ends at least as high and reaches the target with at most the compute, one of them
    strictly (a row that does not reach it in the median seed counts as infinite compute)."""
    def cost(r: dict[str, Any]) -> float:
        return math.inf if r.get("compute_vs_uniform") is None else r["compute_vs_uniform"]

    return any(o is not row and o["diff_vs_uniform"] >= row["diff_vs_uniform"] and cost(o) <= cost(row)
               and (o["diff_vs_uniform"] > row["diff_vs_uniform"] or cost(o) < cost(row)) for o in others)


def diff_text(row: dict[str, Any]) -> str:
    """'+1.20 [+0.40, +2.00]' points, with 'within noise' when the interval contains 0; '-' for uniform."""
    if row["strategy"] == BASELINE:
        return "-"
    diff, low, high = (100 * row[k] if row.get(k) is not None else math.nan
                       for k in ("diff_vs_uniform", "diff_low", "diff_high"))
    if not math.isfinite(diff):
        return "-"
    if not math.isfinite(low):
        return f"{diff:+.2f} (1 seed)"
    noise = " within noise" if row.get("within_noise") else ""
    return f"{diff:+.2f} [{low:+.2f}, {high:+.2f}]{noise}"


def candidates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that may be recommended, best first (see the module's docstring)."""
    found = [r for r in rows if r["strategy"] != BASELINE and not r.get("collapsed") and not r.get("diverged")
             and not _worse_beyond_noise(r) and (_above_beyond_noise(r) or _saves(r))]
    above = [r for r in found if _above_beyond_noise(r)]
    above = sorted(above, key=lambda r: (_dominated(r, above), -r["diff_low"]))
    saving = sorted((r for r in found if not _above_beyond_noise(r)), key=lambda r: r["compute_vs_uniform"])
    return above + saving


def _facts(row: dict[str, Any], results: dict[str, Any]) -> str:
    """What `row` does against uniform, in one clause list."""
    tuned = results.get("tuning", {}).get("enabled", False)
    target = f"uniform's {'tuned ' if tuned else ''}{metric_name(results)}"
    ratio = row.get("compute_vs_uniform")
    if ratio is None:
        reach = f"does not reach {target} in the median seed ({row['reached']} seeds)"
    elif ratio < 1:
        reach = (f"reaches {target} with {1 / ratio:.1f}x less compute than uniform needs to reach it, in "
                 f"{row['reached']} seeds")
    else:
        reach = f"reaches {target} with {ratio:.1f}x the compute uniform needs to reach it, in {row['reached']} seeds"
    diff = 100 * row["diff_vs_uniform"]
    if row.get("within_noise") is None:
        noise = "1 seed: no spread to judge noise"
    else:
        noise = "within noise" if row["within_noise"] else "beyond noise"
    text = f"{reach}, and ends {diff:+.2f} points ({noise})"
    time_ratio = row.get("seconds_vs_uniform")
    if time_ratio is not None:
        text += f"; its wall time to target here is {time_ratio:.1f}x uniform's"
    return text


def recommendation(results: dict[str, Any]) -> str:
    """One recommendation in words: "use X: ..." or "mining does not pay on this data: use Y: ..."."""
    rows = results["summary"]
    found = candidates(rows)
    tuned = results.get("tuning", {}).get("enabled", False)
    suffix = "" if tuned else " (untuned: differences may be learning-rate effects)"
    if not found:
        alternatives = " or alternative" if any(is_alternative(r["strategy"]) for r in rows) else ""
        return (f"mining does not pay on this data: use uniform: no mining strategy{alternatives} reaches uniform's "
                f"{'tuned ' if tuned else ''}{metric_name(results)} with less compute or ends above it beyond noise "
                f"without ending worse beyond noise{suffix}")
    best = found[0]
    if is_alternative(best["strategy"]):
        return f"mining does not pay on this data: use {best['strategy']} (not mining): {_facts(best, results)}{suffix}"
    return f"use {best['strategy']}: {_facts(best, results)}{suffix}"


def warnings(results: dict[str, Any]) -> list[str]:
    """What limits the verdict: too few seeds, a small validation split, collapsed runs, a rate at the grid's
    edge."""
    found = []
    n = len(results["seeds"])
    if n < MIN_SEEDS:
        found.append(f"too few seeds ({n}): with fewer than {MIN_SEEDS} the 95% intervals are wide or missing; run "
                     f"--seeds {MIN_SEEDS} or more")
    n_val = results["dataset"]["n_val"]
    if n_val < MIN_VALIDATION:
        found.append(f"small validation split ({n_val} samples < {MIN_VALIDATION}): the target and the chosen "
                     "learning rates are noisy; give a larger --validation or a --validation-file")
    collapsed = [f"{r['strategy']} seed {r['seed']}" for r in results["runs"] if r.get("collapsed")]
    if collapsed:
        found.append("collapsed runs (test predictions of one class, or at chance): " + ", ".join(collapsed))
    tuning = results.get("tuning", {})
    grid = tuning.get("grid", [])
    edge = tuning.get("at_edge")
    if edge is None and tuning.get("enabled") and len(grid) > 2:  # a results.json from before the grid extended
        edge = [label for label, c in tuning.get("chosen", {}).items() if c["factor"] in (min(grid), max(grid))]
    if edge:
        found.append(f"learning rate chosen at the edge of the rates tried (grid and {tuning.get('extend', 0)} "
                     f"extension steps) for {', '.join(edge)}: a wider --lr-grid may do better")
    return found


def findings(results: dict[str, Any]) -> list[str]:
    """The result in words, one sentence per finding: the target and uniform's own cost to it, who reaches it at
    what compute in how many seeds, who ends above or below uniform beyond the seed spread, who is within noise."""
    rows = {row["strategy"]: row for row in results["summary"]}
    n = len(results["seeds"])
    name = metric_name(results)
    sentences = []
    base = rows.get(BASELINE)
    target = results["target"].get("value")
    share = results.get("baseline", {}).get("compute_to_target_share")
    if base is not None and target is not None:
        own = f", at {share:.2f}x its total compute (median seed)" if share is not None else ""
        sentences.append(f"Target: validation {name} {target:.4f} (uniform's mean over its last epoch, averaged over "
                         f"seeds); uniform itself reaches it in {base['reached']} seeds{own}.")
    fast = [r for r in rows.values() if r["strategy"] != BASELINE and r.get("compute_vs_uniform") is not None]
    fast.sort(key=lambda r: (r["compute_vs_uniform"], -int(r["reached"].split("/")[0])))
    if fast:
        sentences.append("Compute to reach the target, over uniform's own: " + ", ".join(
            f"{r['strategy']} {r['compute_vs_uniform']:.2f}x ({r['reached']} seeds)" for r in fast) + ".")
    else:
        sentences.append(f"No strategy other than uniform reaches uniform's {name} in the median seed.")
    if n < 2:
        sentences.append("With one seed there is no spread to compare against: run --seeds 3 or more.")
        return sentences
    for r in rows.values():
        if r.get("within_noise") is False:
            side = "above" if r["diff_vs_uniform"] > 0 else "below"
            sentences.append(f"{r['strategy']} ends {abs(100 * r['diff_vs_uniform']):.2f} points {side} uniform in "
                             f"test {name}, beyond the seed spread (95% interval {diff_text(r).split(' ', 1)[1]}).")
    noise = [r["strategy"] for r in rows.values() if r.get("within_noise") is True]
    if noise:
        sentences.append(f"Within noise of uniform's test {name}: {', '.join(noise)}.")
    return sentences
