"""The crops this measurement used: the same recipe as ../lossless3d-2026-12-05d/crops_prep.py (which runs from
any checkout), written to /tmp/l3da/crops.pkl, where crops_ab.py reads them."""
import runpy
import sys
from pathlib import Path

Path("/tmp/l3da").mkdir(exist_ok=True)
sys.argv = [sys.argv[0], "/tmp/l3da/crops.pkl"]
runpy.run_path(str(Path(__file__).resolve().parents[1] / "lossless3d-2026-12-05d" / "crops_prep.py"), run_name="__main__")
