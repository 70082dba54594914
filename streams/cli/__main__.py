"""`python -m streams.cli`: the same as the `streamrank` command."""

import sys

from streams.cli import main

sys.exit(main())
