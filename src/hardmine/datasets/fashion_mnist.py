"""Fashion-MNIST (Xiao et al. 2017): 70,000 28x28 grey images of clothing, 10 classes, 60,000 train / 10,000 test.

Read from a directory of the four standard idx files (gzipped or not), e.g. Debian's package:
`apt-get install dataset-fashion-mnist` puts them in /usr/share/datasets/fashion-mnist/. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from hardmine.datasets.tabular import LabeledData

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
          "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an idx file (the MNIST format), gzipped when the name ends in .gz."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an idx file (bad magic number {data[:4].hex()})")
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path} holds {len(data)} bytes, its header {shape} says {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"Fashion-MNIST file {stem}(.gz) not found in {directory}: install the data with "
                            f"`apt-get install dataset-fashion-mnist` (files in {DEFAULT_DIR}) or pass --data-dir "
                            f"DIR holding the four idx files")


def load_fashion_mnist(data_dir: str | Path | None = None) -> LabeledData:
    """Fashion-MNIST as images [N, 1, 28, 28] with pixels scaled to [0, 1], with its standard test split."""
    directory = DEFAULT_DIR if data_dir is None else Path(data_dir)
    arrays = {key: read_idx(_find(directory, stem)) for key, stem in _FILES.items()}
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"Fashion-MNIST {part} images {x.shape} and labels {y.shape} do not match")
        if y.size and (y.min() < 0 or y.max() >= len(CLASSES)):
            raise ValueError(f"Fashion-MNIST {part} labels must be in [0, 10), got [{y.min()}, {y.max()}]")
    images = {k: (arrays[k].astype(np.float32) / 255.0)[:, None] for k in ("x_train", "x_test")}
    return LabeledData("fashion-mnist", images["x_train"], arrays["y_train"].astype(np.int64), images["x_test"],
                       arrays["y_test"].astype(np.int64), CLASSES)
