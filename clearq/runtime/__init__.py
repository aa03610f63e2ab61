"""The agent's side: rebuilding a task's code in a workspace (the worker loop comes next).

Never imported by the SDK; may import the scheduler, envs, models and config.
"""

from clearq.runtime.workspace import WorkspaceError, build_workspace

__all__ = ["WorkspaceError", "build_workspace"]
