"""``python -m sklearn_n2s.cli ...`` runs the ``n2s`` command line."""

import sys

from ._main import main

sys.exit(main())
