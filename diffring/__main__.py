"""`python -m diffring` is the `diffring` command."""

from ._cli import main

raise SystemExit(main())
