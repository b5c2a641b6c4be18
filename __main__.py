"""``python -m swarmgym``: the same command as the ``swarmgym`` console script."""

from .cli import main

raise SystemExit(main())
