"""The middle-8-slice crops of every dev series (2026-12-05c recipe), value tables as the encoder chooses, JPEG XL e7
bytes: /tmp/hybrid/crops.pkl."""
import sys, numpy as np, pickle
from pathlib import Path
ROOT = str(Path(__file__).resolve().parents[3])
sys.path.insert(0, ROOT)
sys.path.insert(0, ROOT + "/bench")
import lossless3d as B
from medpipe.codecs import CodecContext, codec_class
from medpipe.codecs.lossless3d import coder, values
ctx = CodecContext(threads=1)
jxl = codec_class("jpegxl")(effort=7)
out = {}
for rel in B.TUNED + B.UNSEEN:
    f = B.load(B.default_data() / rel)
    if len(f) > 8:
        mid = len(f) // 2
        f = np.ascontiguousarray(f[mid - 4:][:8])
    elif f.shape[1] * f.shape[2] > 1500000:   # big 2-D image: central 1024 x 1024
        r0 = (f.shape[1] - 1024) // 2; c0 = (f.shape[2] - 1024) // 2
        f = np.ascontiguousarray(f[:, max(r0,0):][:, :1024, max(c0,0):][:, :, :1024])
    jb = jxl.encode(f, ctx).nbytes
    work = f.astype(np.int32); lo = int(work.min()); work -= lo; mx = int(work.max())
    w, cm, table, _ = coder.choose_values(work, mx, coder.model.DEFAULT_FLAGS)
    tb = 0 if table is None else len(table)
    out[rel] = dict(work=np.ascontiguousarray(w), maxval=cm, jxl=jb, table=tb)
    print(rel, f.shape, mx, cm, jb, tb, flush=True)
Path("/tmp/hybrid").mkdir(exist_ok=True)
pickle.dump(out, open(sys.argv[1] if len(sys.argv) > 1 else "/tmp/hybrid/crops.pkl", "wb"))
