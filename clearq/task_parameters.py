"""ClearML's ``task_parameters`` module under clearq: class-based parameters.

``from clearml.task_parameters import TaskParameters, param`` becomes
``from clearq.task_parameters import TaskParameters, param``.
"""

from clearq.sdk.task_parameters import (
    Param,
    TaskParameters,
    param,
    percent_param,
    range_validator,
)

__all__ = ["Param", "TaskParameters", "param", "percent_param", "range_validator"]
