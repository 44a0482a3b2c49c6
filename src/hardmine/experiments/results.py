"""The output directory of a comparison: finished runs (so a rerun resumes), results.json and summary.csv.

Layout of DIR:
  setup.json                 what every run shares (data, corruption, training set-up); a rerun must match it
  runs/<strategy>@lr=<lr>__seed<s>.json / .npz   one finished run at one peak learning rate: its numbers, and
                             per-sample arrays for the plots (a tuning run and a judged run at the same rate are
                             one file, so a rerun with another grid, metric or --no-tune reuses what exists)
  runs/reference.json / .npz the uniformly trained reference model behind the difficulty slices
  label_noise.npz            the clean training labels and each seed's flipped indices (with --label-noise)
  results.json, summary.csv  every number, and one row per strategy
Every file is written atomically; a run is written only when it has finished. A file that cannot be read (cut
short, not JSON, not an archive) is named in the error.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from hardmine.atomic import write_bytes, write_json, write_text
from hardmine.diagnostics.evaluation import SLICE_NAMES

SUMMARY_COLUMNS = ("strategy", "test_acc_mean", "test_acc_std", "macro_f1_mean", "macro_f1_std", "diff_vs_uniform",
                   "diff_low", "diff_high", "within_noise", "reached", "compute_to_target", "compute_total",
                   "forwards", "backwards", "seconds_to_target", "train_seconds", "hardmine_seconds",
                   "hardmine_fraction", "rare2_recall_mean", "noise_precision", "noise_recall",
                   "selected_flipped_share", "reference_compute", "seeds", "diverged", "lr", "lr_factor",
                   "metric_mean", "metric_std", "compute_vs_uniform", "seconds_vs_uniform", "tuning_compute",
                   "collapsed")


def run_key(label: str, seed: int | None) -> str:
    """A file name stem for a run: the label made safe, a short hash of the label, and the seed."""
    if seed is None:
        return "reference"
    safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", label)[:60]
    digest = hashlib.sha1(label.encode()).hexdigest()[:8]
    return f"{safe}-{digest}__seed{seed}"


class RunStore:
    """Reads and writes the files of one comparison directory `out` whose runs share `setup`."""

    def __init__(self, out: Path, setup: dict[str, Any]) -> None:
        self.out = Path(out)
        self.runs = self.out / "runs"
        self.setup = json.loads(json.dumps(setup))

    def check(self) -> None:
        """Raise ValueError, before anything is written, when `out` cannot hold this comparison."""
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"--out {str(self.out)!r} exists and is not a directory")
        setup_file = self.out / "setup.json"
        if setup_file.exists():
            previous = read_json(setup_file)
            if previous != self.setup:
                changed = sorted(k for k in set(previous) | set(self.setup) if previous.get(k) != self.setup.get(k))
                raise ValueError(f"--out {str(self.out)!r} holds runs of a different set-up (differs in {changed}); "
                                 "use another directory")
        elif self.out.exists() and any(self.out.iterdir()):
            raise ValueError(f"--out {str(self.out)!r} is not empty and holds no comparison (no setup.json)")

    def open(self) -> None:
        """Create the directory and write setup.json."""
        self.runs.mkdir(parents=True, exist_ok=True)
        write_json(self.out / "setup.json", self.setup)

    def _paths(self, label: str, seed: int | None) -> tuple[Path, Path]:
        """The .json and .npz files of a run (names may hold dots, so no Path.with_suffix)."""
        key = run_key(label, seed)
        return self.runs / f"{key}.json", self.runs / f"{key}.npz"

    def load(self, label: str, seed: int | None) -> tuple[dict, dict[str, np.ndarray]] | None:
        """A finished run's record and arrays, or None when it has not been run."""
        json_path, npz_path = self._paths(label, seed)
        if not (json_path.exists() and npz_path.exists()):
            return None
        return read_json(json_path), read_npz(npz_path)

    def save(self, label: str, seed: int | None, record: dict, arrays: dict[str, np.ndarray]) -> None:
        """Write a finished run: the arrays first, then the record, which marks the run as done."""
        json_path, npz_path = self._paths(label, seed)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        write_bytes(npz_path, buffer.getvalue())
        write_json(json_path, record)

    def save_noise(self, flipped: dict[int, np.ndarray], clean_labels: np.ndarray) -> None:
        """label_noise.npz: the labels before flipping, and the flipped training indices of each seed."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, clean_labels=clean_labels, **{f"flipped_seed{s}": f for s, f in flipped.items()})
        write_bytes(self.out / "label_noise.npz", buffer.getvalue())

    def load_noise(self, seed: int) -> np.ndarray | None:
        """The flipped training indices of run seed `seed`, or None without label noise."""
        path = self.out / "label_noise.npz"
        if not path.exists():
            return None
        return read_npz(path).get(f"flipped_seed{seed}")


def read_json(path: Path) -> Any:
    """The JSON in `path`; ValueError naming the file when it is cut short or not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(path)!r} cannot be read ({err}); it was cut short or changed: delete it to "
                         "rerun that part") from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays in an .npz file, without pickle; ValueError naming the file when it is cut short."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {k: arrays[k] for k in arrays.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{str(path)!r} cannot be read ({err}); it was cut short or changed: delete it to "
                         "rerun that part") from None


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def summary_csv(rows: list[dict[str, Any]], classes: list[str]) -> str:
    """One row per strategy: SUMMARY_COLUMNS, then slice accuracy (easy .. hard) and per-class recall means."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = [*SUMMARY_COLUMNS, *(f"slice_{s}" for s in SLICE_NAMES), *(f"recall_{c}" for c in classes)]
    writer.writerow(header)
    for row in rows:
        slices = row["slice_acc"] or [None] * len(SLICE_NAMES)
        recall = row["per_class_recall"] or [None] * len(classes)
        writer.writerow([_cell(row.get(c)) for c in SUMMARY_COLUMNS] + [_cell(v) for v in slices]
                        + [_cell(v) for v in recall])
    return buffer.getvalue()


def write_results(out: Path, results: dict[str, Any]) -> None:
    """results.json and summary.csv from the results dict (its "summary" rows and dataset "classes")."""
    write_json(out / "results.json", results)
    write_text(out / "summary.csv", summary_csv(results["summary"], results["dataset"]["classes"]))


def read_results(out: Path) -> dict[str, Any]:
    """results.json of a comparison directory; FileNotFoundError naming it when missing."""
    path = Path(out) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist: run `hardmine compare --out {out}` first")
    return read_json(path)
