"""Whole volumes through encode_volume / decode_volume: python whole_ab.py MODEL [tuned|unseen|all] --json OUT

Per series (bench/lossless3d.py's loader and split): bytes of the whole stream (auto slabs, one thread), decode
checked exact, encode and decode CPU seconds (process_time, one pinned core). JPEG XL e7 bytes come from
bench/measured/lossless3d-2026-12-05/bench.json (same volumes; ge_mprage_phantom now has 130 slices, so its JXL
figure there is for 129 and it is reported but left out of the ratios). Run A and B alternately in fresh processes."""
import json, os, sys, time
from pathlib import Path
import numpy as np
ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import lossless3d as B
from medpipe.codecs.lossless3d import coder

name = sys.argv[1]
which = next((a for a in sys.argv[2:] if a in ("tuned", "unseen", "all")), "unseen")
series = {"tuned": B.TUNED, "unseen": B.UNSEEN, "all": B.TUNED + B.UNSEEN}[which]
ref = json.loads((ROOT / "bench/measured/lossless3d-2026-12-05/bench.json").read_text())["results"]
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
coder.warm_up()
out = {}
for rel in series:
    vol = B.load(B.default_data() / rel)
    t0 = time.process_time()
    data = coder.encode_volume(vol, flags=coder.MODELS[name])
    t1 = time.process_time()
    back = coder.decode_volume(data, vol.shape, vol.dtype)
    t2 = time.process_time()
    assert np.array_equal(back, vol), rel
    jxl = ref[rel]["codecs"]["jxl e7"]["bytes"] if ref[rel]["voxels"] == vol.size else None
    out[rel] = dict(bytes=len(data), enc=t1 - t0, dec=t2 - t1, voxels=int(vol.size), jxl=jxl)
    print(f"  {rel:<48} {len(data):>10} " + (f"x{jxl / len(data):.4f} JXL e7" if jxl else "(no JXL figure)")
          + f"  enc {1e9 * (t1 - t0) / vol.size:.0f} dec {1e9 * (t2 - t1) / vol.size:.0f} ns/voxel", flush=True)
keep = [r for r in series if out[r]["jxl"]]
print(f"{name} {which}: total {sum(out[r]['bytes'] for r in series)} aggJXL x"
      f"{sum(out[r]['jxl'] for r in keep) / sum(out[r]['bytes'] for r in keep):.4f}")
if "--json" in sys.argv:
    Path(sys.argv[sys.argv.index("--json") + 1]).write_text(json.dumps(out, indent=1))
