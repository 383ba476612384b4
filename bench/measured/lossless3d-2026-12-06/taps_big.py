"""How much can a large causal linear predictor gain on noise-limited CT (the B70f gap to the noise floor)?"""
import sys
from pathlib import Path

import numpy as np
ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "bench"))

import lossless3d as B

def feats(v, z, R, RP, Z2):
    cur, prv = v[z].astype(np.float64), v[z-1].astype(np.float64)
    H, W = cur.shape; m = max(R, RP, 2)
    cols = []
    for dy in range(-R, 1):
        for dx in range(-R, R+1):
            if dy == 0 and dx >= 0: break
            cols.append(cur[m+dy:H-m+dy, m+dx:W-m+dx])
    for dy in range(-RP, RP+1):
        for dx in range(-RP, RP+1):
            cols.append(prv[m+dy:H-m+dy, m+dx:W-m+dx])
    if Z2:
        p2 = v[z-2].astype(np.float64)
        for dy in (-1,0,1):
            for dx in (-1,0,1):
                cols.append(p2[m+dy:H-m+dy, m+dx:W-m+dx])
    X = np.stack([c.reshape(-1) for c in cols], 1)
    y = cur[m:H-m, m:W-m].reshape(-1)
    return X, y, (H-2*m, W-2*m)

def cond_entropy(e, shape):
    e = np.rint(e).astype(np.int64).reshape(shape)
    a = np.abs(e).astype(np.float64)
    act = np.zeros_like(a)
    act[2:, 2:-2] = a[2:, 1:-3] + a[1:-1, 2:-2] + a[1:-1, 1:-3] + a[1:-1, 3:-1] + a[2:, :-4]*0.5 + a[:-2, 2:-2]*0.5
    e, act = e[2:, 2:-2].ravel(), act[2:, 2:-2].ravel()
    q = np.digitize(act, np.quantile(act, np.linspace(0, 1, 17)[1:-1]))
    bits = 0.0
    for c in range(16):
        s = e[q == c]
        if len(s) == 0: continue
        _, n = np.unique(s, return_counts=True); p = n / n.sum()
        bits += -(n * np.log2(p)).sum()
    return bits / len(e)

rel = sys.argv[1]; zs = range(int(sys.argv[2]), int(sys.argv[3]))
v = B.load(B.default_data() / rel).astype(np.int64)
print(rel, v.shape, v.dtype)
zs = list(zs); tr, te = zs[::2], zs[1::2]
for name, R, RP, Z2 in [("r2p1 (~15)", 2, 1, False), ("r2p2", 2, 2, False), ("r3p1", 3, 1, False), ("r3p2", 3, 2, False),
                        ("r4p2", 4, 2, False), ("r5p3", 5, 3, False), ("r3p2+z2", 3, 2, True)]:
    Xs, ys = [], []
    for z in tr:
        X, y, _ = feats(v, z, R, RP, Z2); idx = np.arange(0, len(y), 7); Xs.append(X[idx]); ys.append(y[idx])
    X = np.concatenate(Xs); y = np.concatenate(ys); X1 = np.c_[X, np.ones(len(X))]
    w = np.linalg.solve(X1.T @ X1 + 1e-6*np.eye(X1.shape[1]), X1.T @ y)
    hs, mae = [], []
    for z in te:
        X, y, sh = feats(v, z, R, RP, Z2); e = y - (X @ w[:-1] + w[-1])
        hs.append(cond_entropy(e, sh)); mae.append(np.abs(e).mean())
    print(f"{name:12s} taps {X.shape[1]:3d}  mae {np.mean(mae):7.3f}  H|act {np.mean(hs):.4f} bits/voxel")
