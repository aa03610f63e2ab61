"""``python -m clearq.cli``: the ``clearq`` command (how ``--detached`` starts an agent)."""

from clearq.cli.app import main

main()
