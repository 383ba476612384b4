"""python -m medpipe PRESET ... (the same as run.py and the medpipe console script)."""
import sys

from .cli import main

sys.exit(main())
