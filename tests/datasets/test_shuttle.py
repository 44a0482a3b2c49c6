"""The Shuttle loader on a small Shuttle.rda written here with rdata, laid out as `dpkg -x` leaves it."""

import numpy as np
import pandas as pd
import pytest

rdata = pytest.importorskip("rdata")

from hardmine.datasets.shuttle import RDA_IN_PACKAGE, find_shuttle, load_shuttle  # noqa: E402


@pytest.fixture
def extracted(tmp_path):
    rng = np.random.default_rng(0)
    classes = ["Rad.Flow"] * 40 + ["High"] * 12 + ["Bpv.Close"] * 4
    frame = pd.DataFrame({f"V{i}": rng.normal(size=len(classes)) * 10 + i for i in range(1, 10)})
    frame["Class"] = pd.Categorical(classes)
    path = tmp_path / RDA_IN_PACKAGE
    path.parent.mkdir(parents=True)
    rdata.write_rda(path, {"Shuttle": frame})
    return tmp_path, frame


def test_reads_rda_from_the_extracted_package(extracted):
    root, frame = extracted
    data = load_shuttle(root, test_fraction=0.25, seed=0)
    assert data.classes == ("Bpv.Close", "High", "Rad.Flow")
    assert data.x_train.shape[1] == 9 and data.x_train.shape[0] + data.x_test.shape[0] == 56
    assert np.bincount(data.y_test, minlength=3).tolist() == [1, 3, 10]
    assert abs(float(data.x_train.mean())) < 1e-5  # standardised with the training part's statistics
    assert find_shuttle(root / RDA_IN_PACKAGE) == root / RDA_IN_PACKAGE


def test_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get download r-cran-mlbench"):
        load_shuttle(tmp_path)
