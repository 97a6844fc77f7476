"""``python -m switchman.gateway serve|config check|spend`` (same as the main CLI)."""

import sys

from switchman.gateway.commands import main

sys.exit(main())
