"""A/B on the crops: python ab.py NAME k=v ... ; prints bytes per crop and ratios vs baseline file."""
import sys, pickle, time, json, os, numpy as np
sys.path.insert(0, "/work/wt/l3dadapt")
from medpipe.codecs.lossless3d import model
sys.path.insert(0, "/work/wt/l3dadapt/bench")
from lossless3d import TUNED, UNSEEN
crops = pickle.load(open("/tmp/l3da/crops.pkl", "rb"))
# knobs: 0 apm mode, 1 apm rate, 2 mix lr, 3 mixer share (x/4), 4 counter limit mix, 5 counter limit nomix,
# 6 apm ctx1, 7 apm ctx2, 8 lms2 mu, 9 smooth pred, 10 noise-rel mixer sel, 11 LMS_MU, 12 EF_MU
NAMES = ["apm", "arate", "mixlr", "mshare", "lim", "lim0", "actx1", "actx2", "lms2", "smooth", "nzsel", "lmsmu", "efmu", "zo", "mix2", "xt"]
DEF = dict(apm=0, arate=7, mixlr=1, mshare=1, lim=250, lim0=60, actx1=0, actx2=1, lms2=0, smooth=0, nzsel=0,
           lmsmu=1000, efmu=400, zo=0, mix2=0, xt=0)
name = sys.argv[1]
which = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] in ("tuned", "unseen", "all") else "tuned"
kv = dict(DEF)
for a in sys.argv[2:]:
    if "=" in a:
        k, v = a.split("="); kv[k] = int(v)
kn = np.array([kv[n] for n in NAMES] + [0] * 0, np.int64)
series = {"tuned": TUNED, "unseen": UNSEEN, "all": TUNED + UNSEEN}[which]
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
# compile
model.run(False, np.zeros((1, 4, 4), np.int32), np.zeros(4096, np.uint8), 1, model.DEFAULT_FLAGS, kn)
res = {}
tcpu = 0; vox = 0
for rel in series:
    c = crops[rel]
    w = c["work"]
    buf = np.empty(w.size * 2 + 64 * w.shape[2] + 64, np.uint8)
    t0 = time.process_time()
    st, used = model.run(False, w, buf, c["maxval"], model.DEFAULT_FLAGS, kn)
    tcpu += time.process_time() - t0; vox += w.size
    assert st == 0, st
    res[rel] = int(used) + c["table"]
base = {}
if os.path.exists("/tmp/l3da/base.json"):
    base = json.load(open("/tmp/l3da/base.json"))
if name == "base" and which == "all":
    json.dump(res, open("/tmp/l3da/base.json", "w"))
line = []
for rel in series:
    b = base.get(rel)
    d = f"{100 * (res[rel] / b - 1):+.2f}%" if b else ""
    print(f"  {rel[-32:]:<32} {res[rel]:>9} jxl x{crops[rel]['jxl'] / res[rel]:.4f} {d}")
tb = sum(base.get(r, 0) for r in series)
tot = sum(res.values())
agg = sum(crops[r]["jxl"] for r in series) / tot
print(f"{name} {which} {' '.join(a for a in sys.argv[2:] if '=' in a)}: total {tot} "
      f"{'%+.3f%%' % (100 * (tot / tb - 1)) if tb else ''} aggJXL x{agg:.4f} enc {1e9 * tcpu / vox:.0f} ns/vox")
