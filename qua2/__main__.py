"""``python -m qua2`` is the same as the ``qua2`` console script."""

from qua2.cli import main

raise SystemExit(main())
