"""The agent's side: claim tasks, rebuild their code and environment, run and watch them.

Never imported by the SDK; may import the scheduler, envs, models and config.

The names below are imported on first use, so that a light submodule (``exits``,
``graces``: what the CLI's flags show) does not load the agent and its executor.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clearq.runtime.agent import Agent, AgentOptions, AgentState, worker_id
    from clearq.runtime.executor import Control, Executor, ExecutorConfig, Outcome, Step, StepFailed
    from clearq.runtime.exits import OnceExit
    from clearq.runtime.gpus import GpuPool, parse_gpus
    from clearq.runtime.monitor import MachineMonitor, ProcessTreeMonitor
    from clearq.runtime.taskenv import EnvProvider, PreparedEnv, SystemInterpreter
    from clearq.runtime.workspace import WorkspaceError, build_workspace

_HOMES = {
    "Agent": "agent",
    "AgentOptions": "agent",
    "AgentState": "agent",
    "Control": "executor",
    "EnvProvider": "taskenv",
    "Executor": "executor",
    "ExecutorConfig": "executor",
    "GpuPool": "gpus",
    "MachineMonitor": "monitor",
    "OnceExit": "exits",
    "Outcome": "executor",
    "PreparedEnv": "taskenv",
    "ProcessTreeMonitor": "monitor",
    "Step": "executor",
    "StepFailed": "executor",
    "SystemInterpreter": "taskenv",
    "WorkspaceError": "workspace",
    "build_workspace": "workspace",
    "parse_gpus": "gpus",
    "worker_id": "agent",
}

__all__ = [
    "Agent",
    "AgentOptions",
    "AgentState",
    "Control",
    "EnvProvider",
    "Executor",
    "ExecutorConfig",
    "GpuPool",
    "MachineMonitor",
    "OnceExit",
    "Outcome",
    "PreparedEnv",
    "ProcessTreeMonitor",
    "Step",
    "StepFailed",
    "SystemInterpreter",
    "WorkspaceError",
    "build_workspace",
    "parse_gpus",
    "worker_id",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'clearq.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(f"clearq.runtime.{home}"), name)
