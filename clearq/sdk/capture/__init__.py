"""What ``Task.init`` captures so an agent can run a script again.

``git``: the code (repository, pushed commit, diff, untracked files, or the script's
text outside a repository). ``packages``: the Python packages it needs. The agent's
inverse of ``git`` is ``clearq.runtime.workspace``.
"""

from clearq.sdk.capture.git import CaptureError, ScriptCapture, capture_script, strip_credentials

__all__ = ["CaptureError", "ScriptCapture", "capture_script", "strip_credentials"]
