"""The Fashion-MNIST loader on small idx files written here in the real format (gzipped and plain)."""

import gzip
import struct

import numpy as np
import pytest

from hardmine.datasets.fashion_mnist import load_fashion_mnist, read_idx


def write_idx(path, array, compress=True):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", n) for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.fixture
def idx_dir(tmp_path):
    rng = np.random.default_rng(0)
    parts = {"train": 30, "t10k": 12}
    for part, n in parts.items():
        write_idx(tmp_path / f"{part}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{part}-labels-idx1-ubyte", np.arange(n) % 10, compress=False)
    return tmp_path


def test_reads_idx_files_gzipped_or_not(idx_dir):
    data = load_fashion_mnist(idx_dir)
    assert data.x_train.shape == (30, 1, 28, 28) and data.x_test.shape == (12, 1, 28, 28)
    raw = read_idx(idx_dir / "train-images-idx3-ubyte.gz")
    assert np.allclose(data.x_train[:, 0], raw / 255.0)
    assert data.y_test.tolist() == [i % 10 for i in range(12)]
    assert data.classes[0] == "T-shirt/top" and data.num_classes == 10


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


def test_corrupt_idx_is_refused(tmp_path):
    path = tmp_path / "bad.gz"
    gzip.open(path, "wb").write(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(ValueError, match="header"):
        read_idx(path)
    (tmp_path / "notidx").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(tmp_path / "notidx")
