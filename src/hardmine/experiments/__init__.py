"""The benchmark runner: strategies x seeds on a data set -> results.json, summary.csv, plots and report.html.

`hardmine.compare` (`api.compare`) is the entry point for a user's own model and data; `hardmine compare` and
`hardmine report` are `commands.compare` and `commands.report`, and the CLI's compare calls `api.compare`. The
pieces are usable on their own: `parse_specs` / `build_strategy` (strategy text to objects), `train_run` (one
run), `run_comparison` (the whole comparison), `backward_set` and `Cost` (the compute accounting).
"""

from hardmine.experiments.accounting import Cost, backward_set
from hardmine.experiments.api import compare
from hardmine.experiments.config import TrainConfig
from hardmine.experiments.runner import run_comparison
from hardmine.experiments.spec import StrategySpec, parse_spec, parse_specs
from hardmine.experiments.strategies import Strategy, build_strategy, known_strategies
from hardmine.experiments.train import RunOutput, train_run

__all__ = ["Cost", "RunOutput", "Strategy", "StrategySpec", "TrainConfig", "backward_set", "build_strategy",
           "compare", "known_strategies", "parse_spec", "parse_specs", "run_comparison", "train_run"]
