"""clearq: capture runnable ML tasks, queue them, run them anywhere.

The database is the only server: PostgreSQL for many machines, an SQLite file on one.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clearq")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
