"""``python -m medtune`` runs the command line."""

import sys

from medtune.cli.main import main

sys.exit(main())
