"""`hardmine.__all__`: about 30 names a user needs, each documented; every name that left the top level still
imports as `hm.X`, with a DeprecationWarning naming its new import path."""

import importlib
import warnings

import pytest

import hardmine as hm

# the 56 names of hardmine.__all__ before it was cut to what users need
OLD_ALL = [
    "GUARDS", "IRREDUCIBLE_LOSS", "LOSSES", "POLICIES", "SELECTORS", "AntiCurriculumPolicy", "BatchPolicy",
    "CandidatePolicy", "ClassBalance", "ClassBalancedPolicy", "ClassWeightedLoss", "Column", "CoverageGuard",
    "CurriculumPolicy", "FocalLoss", "Guard", "HardExampleSampler", "ImportancePolicy", "LogitAdjustedLoss",
    "MisclassifiedUpweight", "NoiseGuard", "OHEMLoss", "OnlineTopLossPolicy", "PacingPolicy", "Policy",
    "PriorityPolicy", "PruneEasyPolicy", "RankPolicy", "RefreshCallback", "RhoLossPolicy", "ScoreMemory",
    "Selection", "SelectiveBackpropPolicy", "SelfPacedPolicy", "Stochastic", "SubsetPolicy", "SumTree", "Threshold",
    "TopK", "TopKFractionPolicy", "UniformPolicy", "WeightCap", "WithIndex", "build_policy", "compare",
    "cross_fit_losses", "guards", "load_state", "mine_negatives_ssd", "ohem_rois", "reduce", "reference_losses",
    "save_state", "schedules", "scores", "train_reference",
]
MOVED = sorted(set(OLD_ALL) - set(hm.__all__))
ADDED = {"BatchWeights", "HardStream"}  # sampler.weights() returns the first (issue 23); streams (issue 25)


def test_all_has_about_thirty_unique_names():
    assert 25 <= len(hm.__all__) <= 35
    assert len(set(hm.__all__)) == len(hm.__all__)


@pytest.mark.parametrize("name", hm.__all__)
def test_every_public_name_is_documented_and_imports_without_a_warning(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        value = getattr(hm, name)
    doc = getattr(value, "__doc__", None)
    assert doc and doc.strip(), f"hm.{name} has no docstring"


def test_the_moved_names_are_the_ones_expected():
    assert len(MOVED) == len(OLD_ALL) - len(set(OLD_ALL) & set(hm.__all__))
    assert set(hm.__all__) <= set(OLD_ALL) | ADDED  # a cut, not a reshuffle: the only new names are named here


@pytest.mark.parametrize("name", MOVED)
def test_every_old_name_still_imports_with_a_warning_naming_its_new_path(name):
    expected = rf"hardmine\.{name} is deprecated: use `(from|import) hardmine\."
    with pytest.warns(DeprecationWarning, match=expected) as seen:
        value = getattr(hm, name)
    instead = str(seen[0].message).split("`")[1]  # "from M import X" or "import M"
    target = importlib.import_module(instead.split()[1])
    assert (getattr(target, name) if instead.startswith("from") else target) is value
    assert seen[0].filename == __file__  # the warning points at the caller's line


def test_from_import_of_an_old_name_warns_and_unknown_names_still_fail():
    with pytest.warns(DeprecationWarning, match="hardmine.RankPolicy is deprecated"):
        from hardmine import RankPolicy  # noqa: F401
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        hm.nope  # noqa: B018
