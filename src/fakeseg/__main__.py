"""``python -m fakeseg``: the same as the ``fakeseg`` command."""

from fakeseg.cli import main

raise SystemExit(main())
