"""The benchmark runner: strategies x seeds on a data set -> results.json, summary.csv, plots and report.html.

`hardmine compare` and `hardmine report` are `commands.compare` and `commands.report`; the pieces are usable on
their own: `parse_specs` / `build_strategy` (strategy text to objects), `train_run` (one run), `prepare` and
`run_comparison` (the whole comparison).
"""

from hardmine.experiments.config import TrainConfig
from hardmine.experiments.runner import DataOptions, prepare, run_comparison
from hardmine.experiments.spec import StrategySpec, parse_spec, parse_specs
from hardmine.experiments.strategies import Strategy, build_strategy, known_strategies
from hardmine.experiments.train import RunOutput, train_run

__all__ = ["DataOptions", "RunOutput", "Strategy", "StrategySpec", "TrainConfig", "build_strategy",
           "known_strategies", "parse_spec", "parse_specs", "prepare", "run_comparison", "train_run"]
