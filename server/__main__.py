"""``python -m server serve ...`` is the same as the ``arbiter`` console script."""

from server.cli import main

raise SystemExit(main())
