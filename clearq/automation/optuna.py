"""ClearML's ``automation.optuna``: ``from clearq.automation.optuna import OptimizerOptuna``."""

from clearq.automation.hpo_optuna import OptimizerOptuna, optuna_storage

__all__ = ["OptimizerOptuna", "optuna_storage"]
