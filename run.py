#!/usr/bin/env python3
"""medpipe entry point: python run.py presets/headct.yaml (see README.md)."""
import sys

from medpipe.cli import main

if __name__ == "__main__":
    sys.exit(main())
