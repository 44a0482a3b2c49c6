"""Statlog Shuttle: 58,000 rows of 9 numeric sensor readings, 7 classes from 45,586 rows down to 10 (rare events).

Read from `Shuttle.rda` of the R package mlbench with PyPI's `rdata` (no R needed). Debian ships it in
`r-cran-mlbench`; fetch the file without installing R:
`apt-get download r-cran-mlbench && dpkg -x r-cran-mlbench_*.deb DIR`, then pass DIR (or the .rda file itself).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from hardmine.datasets.tabular import LabeledData, from_arrays

RDA_IN_PACKAGE = Path("usr/lib/R/site-library/mlbench/data/Shuttle.rda")
_HOW = ("`apt-get download r-cran-mlbench && dpkg -x r-cran-mlbench_*.deb DIR` and pass --data-dir DIR "
        "(or the path of Shuttle.rda)")


def find_shuttle(path: str | Path | None = None) -> Path:
    """The Shuttle.rda file: `path` itself, or inside the directory `path` (directly, or where dpkg -x put it).

    Without a path, the system's R library (/usr/lib/R/site-library/mlbench) is tried.
    """
    if path is None:
        candidates = [Path("/") / RDA_IN_PACKAGE]
    else:
        path = Path(path)
        candidates = [path] if path.suffix == ".rda" else [path / "Shuttle.rda", path / RDA_IN_PACKAGE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"Shuttle.rda not found (looked at {', '.join(map(str, candidates))}): get it with "
                            + _HOW)


def load_shuttle(path: str | Path | None = None, test_fraction: float = 0.25, seed: int = 0) -> LabeledData:
    """Shuttle with a stratified test split (seeded); features standardised with the training part's statistics."""
    try:
        import rdata
    except ImportError as err:
        raise ImportError("reading Shuttle.rda needs the rdata package: pip install rdata") from err
    rda = find_shuttle(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the file declares no string encoding; its names are ASCII
        converted = rdata.conversion.convert(rdata.parser.parse_file(rda))
    if "Shuttle" not in converted:
        raise ValueError(f"{rda} holds {sorted(converted)}, not the Shuttle data frame")
    frame = converted["Shuttle"]
    if "Class" not in frame.columns:
        raise ValueError(f"the Shuttle data frame in {rda} has no Class column: {list(frame.columns)}")
    x = frame.drop(columns=["Class"]).to_numpy(dtype=np.float32)
    y = frame["Class"].astype(str).to_numpy()
    return from_arrays("shuttle", x, y, test_fraction=test_fraction, seed=seed)
