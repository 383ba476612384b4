"""python split_ab.py ref|new [flags]: encode+decode chosen crops, sha of streams, CPU ns/voxel."""
import sys, pickle, time, hashlib, os, numpy as np
which = sys.argv[1]
flags_arg = int(sys.argv[2]) if len(sys.argv) > 2 else None
if which == "ref":
    sys.path.insert(0, "/tmp/l3da/refpkg")
    from l3dref import model
else:
    sys.path.insert(0, "/work/wt/l3dadapt")
    import importlib.util
    spec = importlib.util.spec_from_file_location("medpipe.codecs.lossless3d.model", "/work/wt/l3dadapt/medpipe/codecs/lossless3d/model.py")
    import medpipe.codecs.lossless3d.model as model
flags = model.DEFAULT_FLAGS if flags_arg is None else flags_arg
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
crops = pickle.load(open("/tmp/l3da/crops.pkl", "rb"))
names = ["ct_head/cq500_ct5", "ct_chest/lung_dx_a0002/series_2_b70f", "mr/rembrandt_hf0990_flair",
         "us/philips_greyscale_cine.dcm", "xray/kodak_cr_hand.dcm", "mr/ge_mprage_phantom"]
model.run(False, np.zeros((1, 4, 4), np.int32), np.zeros(4096, np.uint8), 1, flags)
h = hashlib.sha256(); te = td = 0; vox = 0
for n in names:
    w = crops[n]["work"]; mx = crops[n]["maxval"]
    buf = np.empty(w.size * 2 + 64 * w.shape[2] + 64, np.uint8)
    t0 = time.process_time(); st, used = model.run(False, w, buf, mx, flags); t1 = time.process_time()
    out = np.empty_like(w)
    st2, _ = model.run(True, out, buf[:used].copy(), mx, flags); t2 = time.process_time()
    assert st == 0 and st2 == 0 and np.array_equal(out, w), n
    h.update(buf[:used].tobytes()); te += t1 - t0; td += t2 - t1; vox += w.size
print(f"{which} flags={flags} sha {h.hexdigest()[:16]} enc {1e9*te/vox:.1f} dec {1e9*td/vox:.1f} ns/vox")
