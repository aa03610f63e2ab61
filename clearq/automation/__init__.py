"""Automation on the SDK's public surface: hyperparameter optimisation (and pipelines).

Nothing here imports the agent (``clearq.runtime``): automation clones, enqueues and
watches tasks through ``clearq.Task`` and the store, like any user's script. Optuna is
an optional extra, imported only when an ``OptimizerOptuna`` search starts.
"""

from clearq.automation.hpo import HyperParameterOptimizer
from clearq.automation.hpo_optuna import OptimizerOptuna
from clearq.automation.hpo_params import (
    DiscreteParameterRange,
    LogUniformParameterRange,
    Parameter,
    UniformIntegerParameterRange,
    UniformParameterRange,
)
from clearq.automation.hpo_strategies import GridSearch, RandomSearch, SearchStrategy
from clearq.automation.hpo_trials import Objective, TrialResult, TrialState

__all__ = [
    "DiscreteParameterRange",
    "GridSearch",
    "HyperParameterOptimizer",
    "LogUniformParameterRange",
    "Objective",
    "OptimizerOptuna",
    "Parameter",
    "RandomSearch",
    "SearchStrategy",
    "TrialResult",
    "TrialState",
    "UniformIntegerParameterRange",
    "UniformParameterRange",
]
