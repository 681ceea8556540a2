"""``python -m screenalytics_assets.cli`` = the ``screenalytics`` command."""

import sys

from . import main

sys.exit(main())
