"""Hybrid probe A/B on crops: python ab.py NAME [tuned|unseen|all] hy=1 hyl=0 hfb=1 [stats=1]"""
import sys, pickle, time, json, os, zlib, numpy as np
sys.path.insert(0, "/work/wt/hybrid"); sys.path.insert(0, "/work/wt/hybrid/bench"); sys.path.insert(0, "/tmp/hybrid")
from medpipe.codecs.lossless3d import model, static
import pmodel
from lossless3d import TUNED, UNSEEN
crops = pickle.load(open("/tmp/hybrid/crops.pkl", "rb"))
NAMES = ["hy", "hyl", "hfb", "hsc", "hctx"]
kv = dict(ncls=8, hy=0, hyl=0, hfb=1, hsc=8, hctx=0, stats=0)
name = sys.argv[1]
which = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] in ("tuned", "unseen", "all") else "tuned"
for a in sys.argv[2:]:
    if "=" in a:
        k, v = a.split("="); kv[k] = int(v)
kn = np.array([kv[n] for n in NAMES], np.int64)
series = {"tuned": TUNED, "unseen": UNSEEN, "all": TUNED + UNSEEN}[which]
os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
def H(res, ctx):
    # empirical conditional entropy, bits/voxel
    tot = 0.0
    for q in np.unique(ctx):
        r = res[ctx == q]
        _, cnt = np.unique(r, return_counts=True)
        p = cnt / cnt.sum()
        tot += -(cnt * np.log2(p)).sum()
    return tot / len(res)
def act(e):
    a = np.abs(e).astype(np.int64)
    s = np.zeros_like(a)
    s[:, 1:, :] += a[:, :-1, :]; s[:, :, 1:] += a[:, :, :-1]; s[1:] += a[:-1]
    return np.minimum(np.log2(1 + s).astype(int) * 2, 40)
res = {}; tcpu = 0; vox = 0; wbytes = {}
for rel in series:
    c = crops[rel]; w = c["work"]
    if kv["ncls"] == 1:
        from medpipe.codecs.lossless3d import static_kernel as K
        fw = np.zeros((2, K.N_CLS, K.N_W), np.int64)
        first, rest = static.sample(w)
        z = lambda n: np.zeros(n, np.int64)
        fw[0] = static.fit_classes(first[0], first[1], z(len(first[1])), 6)
        fw[1] = static.fit_classes(rest[0], rest[1], z(len(rest[1])), K.N_TAPS) if rest is not None else fw[0]
        thr = np.full(K.N_CLS - 1, K.G_SIZE - 1, np.int64); shift = 0
        static.fit_feedback(w, c["maxval"], fw, thr, shift)
        fw[:, 1:] = fw[:, :1]
    else:
        fw, thr, shift = static.fit_weights(w)
        static.fit_feedback(w, c["maxval"], fw, thr, shift)
    gtab = static.class_table(thr)
    wsave = fw if kv["ncls"] == 8 else fw[:, :1]
    wb = len(zlib.compress(wsave.astype("<i4").tobytes() + thr.astype("<u2").tobytes(), 9)) + 1 if kn[0] else 0
    buf = np.empty(w.size * 2 + 64 * w.shape[2] + 64, np.uint8)
    pout = np.zeros((2,) + w.shape, np.int64) if kn[0] else np.zeros((2, 1, 1, 1), np.int64)
    t0 = time.process_time()
    st, used = pmodel.run(False, w, buf, c["maxval"], model.DEFAULT_FLAGS, fw, gtab, shift, kn, pout)
    tcpu += time.process_time() - t0; vox += w.size
    assert st == 0, st
    if kv["stats"] and kn[0]:
        x8 = w.astype(np.int64) * 8
        ef = (x8 - pout[0]); es = (x8 - pout[1])
        rf = np.clip(ef + 4 >> 3, -4000, 4000); rs = np.clip(es + 4 >> 3, -4000, 4000)
        print(f"    {rel[-30:]:<30} mae full {np.abs(ef).mean()/8:.3f} fit {np.abs(es).mean()/8:.3f} "
              f"avg {np.abs(x8 - (pout[0] + pout[1]) // 2).mean()/8:.3f} fit-better {np.mean(np.abs(es) < np.abs(ef)):.3f} "
              f"H full {H(rf.ravel(), act(ef).ravel()):.3f} fit {H(rs.ravel(), act(es).ravel()):.3f}", flush=True)
    res[rel] = int(used) + c["table"] + wb; wbytes[rel] = wb
base = json.load(open("/tmp/hybrid/base_v2.json"))
for rel in series:
    b = base.get(rel)
    print(f"  {rel[-32:]:<32} {res[rel]:>9} jxl x{crops[rel]['jxl'] / res[rel]:.4f} {100 * (res[rel] / b - 1):+.2f}% (w {wbytes[rel]})")
tb = sum(base[r] for r in series); tot = sum(res.values())
agg = sum(crops[r]["jxl"] for r in series) / tot
print(f"{name} {which} {' '.join(a for a in sys.argv[2:] if '=' in a)}: total {tot} {100 * (tot / tb - 1):+.3f}% "
      f"aggJXL x{agg:.4f} enc {1e9 * tcpu / vox:.0f} ns/vox")
json.dump(res, open(f"/tmp/hybrid/res_{name}_{which}.json", "w"))
