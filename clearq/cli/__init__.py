"""The ``clearq`` command: thin; it parses, calls the store, and prints.

Every subcommand lives in its own module (``db``, ``queue``, ``task``, ``reap``);
``app`` joins them and turns a :class:`~clearq.errors.ClearqError` into a one-line
``error: ...`` on stderr and exit status 1.
"""

from clearq.cli.app import app, main

__all__ = ["app", "main"]
