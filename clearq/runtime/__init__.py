"""The agent's side: claim tasks, rebuild their code and environment, run and watch them.

Never imported by the SDK; may import the scheduler, envs, models and config.
"""

from clearq.runtime.agent import Agent, AgentOptions, AgentState, worker_id
from clearq.runtime.executor import Control, Executor, ExecutorConfig, Outcome, Step, StepFailed
from clearq.runtime.exits import OnceExit
from clearq.runtime.gpus import GpuPool, parse_gpus
from clearq.runtime.monitor import MachineMonitor, ProcessTreeMonitor
from clearq.runtime.taskenv import EnvProvider, PreparedEnv, SystemInterpreter
from clearq.runtime.workspace import WorkspaceError, build_workspace

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
