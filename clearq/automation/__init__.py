"""Automation on the SDK's public surface: pipelines and hyperparameter optimisation.

Nothing here imports the agent (``clearq.runtime``): automation clones, enqueues and
watches tasks through ``clearq.Task`` and the store, like any user's script. Optuna is
an optional extra, imported only when an ``OptimizerOptuna`` search starts.
"""

from clearq.automation.controller import PipelineController
from clearq.automation.decorator import PipelineDecorator
from clearq.automation.hpo_optuna import OptimizerOptuna, optuna_storage
from clearq.automation.hpo_params import (
    DiscreteParameterRange,
    LogUniformParameterRange,
    Parameter,
    UniformIntegerParameterRange,
    UniformParameterRange,
)
from clearq.automation.hpo_strategies import GridSearch, RandomSearch, SearchStrategy
from clearq.automation.hpo_trials import Objective, TrialResult, TrialState
from clearq.automation.optimization import HyperParameterOptimizer
from clearq.automation.pipeline import Pipeline
from clearq.automation.scheduling import TaskScheduler, TriggerScheduler

__all__ = [
    "DiscreteParameterRange",
    "GridSearch",
    "HyperParameterOptimizer",
    "LogUniformParameterRange",
    "Objective",
    "OptimizerOptuna",
    "Parameter",
    "Pipeline",
    "PipelineController",
    "PipelineDecorator",
    "RandomSearch",
    "SearchStrategy",
    "TaskScheduler",
    "TrialResult",
    "TrialState",
    "TriggerScheduler",
    "UniformIntegerParameterRange",
    "UniformParameterRange",
    "optuna_storage",
]
