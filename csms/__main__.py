"""``python -m csms`` runs the command line."""

from csms.cli import main

raise SystemExit(main())
