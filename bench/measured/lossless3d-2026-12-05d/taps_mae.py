import pickle, numpy as np, sys
sys.path.insert(0, '/work/wt/hybrid')
from medpipe.codecs.lossless3d import static
crops = pickle.load(open('/tmp/hybrid/crops.pkl','rb'))
B = ['ct_head/cq500_ct5','ct_head/philips_phantom_stereotaxis_b','ct_chest/lidc_idri_0001','mr/siemens_t1_sag_brain', 'ct_chest/acrin_flt_breast_001/series_2_805941']
base = [(0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0)]
pb = [(0, 0), (0, -1), (-1, 0), (0, 1), (1, 0), (-1, -1), (-1, 1), (1, -1), (1, 1)]
ext_c = [(-1, -2), (-1, 2), (-2, -1), (-2, 1)]
ext_p = [(0, -2), (0, 2), (-2, 0), (2, 0)]
def cols(v, z, cset, pset, p2=False):
    cur, prv = v[z].astype(np.int64), v[z-1].astype(np.int64)
    c = [static.sh(np.pad(cur,2,mode='edge'), dy, dx, 1, 3)[2:-0 or None, 2:] for dy, dx in []]
    out=[]
    P=2
    cp=np.pad(cur,P,mode='edge'); pp=np.pad(prv,P,mode='edge'); p2p=np.pad(v[z-2].astype(np.int64),P,mode='edge')
    R,C=cur.shape
    f=lambda a,dy,dx: a[P+dy:P+dy+R, P+dx:P+dx+C][3:-3,3:-3].ravel()
    for dy,dx in cset: out.append(f(cp,dy,dx))
    for dy,dx in pset: out.append(f(pp,dy,dx))
    if p2: out.append(f(p2p,0,0))
    return np.stack(out,1).astype(float), f(cp,0,0)
for rel in B:
    v = crops[rel]['work']
    res=[]
    for name,(cs,ps,p2) in {'15':(base,pb,False),'+4c':(base+ext_c,pb,False),'+4c4p':(base+ext_c,pb+ext_p,False),'+4c4p+P2':(base+ext_c,pb+ext_p,True)}.items():
        xs=[];ys=[]
        for z in (2,3,4,5): x,y=cols(v,z,cs,ps,p2); xs.append(x[::7]); ys.append(y[::7])
        x=np.concatenate(xs); y=np.concatenate(ys)
        w=static.fit(x,y)/(1<<14)
        xt,yt=cols(v,6,cs,ps,p2)
        e=yt-(xt@w[:-1]+w[-1])
        res.append(f"{name} {np.abs(e).mean():.3f}")
    print(rel[-30:], *res)
