"""Crops A/B through the real coder: python crops_ab.py MODEL [tuned|unseen|all] [--check] [--json OUT]

Codes every crop of /tmp/hybrid/crops.pkl (crops_prep.py) as one slab with coder.code_slab (the hybrid's fit and
its weights block included), size = slab code + value table bytes; x JPEG XL e7 of the same crop; encode CPU time
(one pinned core; the fit included); --check decodes every crop through model.run and compares it exactly."""
import json, os, pickle, sys, time
from pathlib import Path
import numpy as np
ROOT = str(Path(__file__).resolve().parents[3])
sys.path.insert(0, ROOT)
sys.path.insert(0, ROOT + "/bench")
from lossless3d import TUNED, UNSEEN
from medpipe.codecs.lossless3d import coder, fitted, model

name = sys.argv[1]
which = next((a for a in sys.argv[2:] if a in ("tuned", "unseen", "all")), "all")
series = {"tuned": TUNED, "unseen": UNSEEN, "all": TUNED + UNSEEN}[which]
flags = coder.MODELS[name]
crops = pickle.load(open("/tmp/hybrid/crops.pkl", "rb"))
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
coder.warm_up()
res, t_enc, t_dec, vox = {}, 0.0, 0.0, 0
for rel in series:
    c = crops[rel]
    t0 = time.process_time()
    code = coder.code_slab(c["work"], c["maxval"], flags)
    t_enc += time.process_time() - t0
    vox += c["work"].size
    res[rel] = len(code) + c["table"]
    if "--check" in sys.argv:
        out = np.zeros_like(c["work"])
        w, at = fitted.read_weights(code, 0, len(code)) if flags & fitted.F_FIT else (fitted.NO_WEIGHTS, 0)
        t0 = time.process_time()
        status, _ = model.run(True, out, np.frombuffer(bytearray(code), np.uint8, len(code) - at, at), c["maxval"], flags, w)
        t_dec += time.process_time() - t0
        assert status == model.OK and np.array_equal(out, c["work"]), rel
    print(f"  {rel:<48} {res[rel]:>9} x{c['jxl'] / res[rel]:.4f} JXL e7", flush=True)
tot = sum(res.values())
print(f"{name} {which}: total {tot} aggJXL x{sum(crops[r]['jxl'] for r in series) / tot:.4f} "
      f"encode {1e9 * t_enc / vox:.0f} ns/voxel" + (f" decode {1e9 * t_dec / vox:.0f} ns/voxel (exact)" if t_dec else ""))
if "--json" in sys.argv:
    Path(sys.argv[sys.argv.index("--json") + 1]).write_text(json.dumps(dict(model=name, sizes=res, enc=t_enc,
                                                                            dec=t_dec, voxels=vox)))
