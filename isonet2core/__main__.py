"""``python -m isonet2core`` is the ``isonet2`` command."""
import sys

from isonet2core.cli.main import main

sys.exit(main())
