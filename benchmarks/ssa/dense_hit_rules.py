"""Dense attention's hit rules against needle strength on the CPU: for one query at the end of n random keys
with one needle key ``s * q``, the needle's softmax weight and the cosine of the output with its value.
Shows why the probe counts a needle found by weight (>= 0.5), not by cosine: random values cancel, so the
cosine passes with a few percent of the weight. Run: ``OMP_NUM_THREADS=1 python benchmarks/ssa/dense_hit_rules.py``
(about a minute per length)."""
import math

import torch

torch.set_num_threads(1)
D=128
g=torch.Generator().manual_seed(0)
for n in (131072, 1048576):
    k=torch.randn(n,D,generator=g); v=torch.randn(n,D,generator=g)
    for s in (0.75,1.0,1.25,1.5,2.0):
        W=[];C=[]
        for trial in range(48):
            t=n-1; q=torch.randn(D,generator=g); p=int(torch.randint(0,n-1,(1,),generator=g))
            kk=k[p].clone(); k[p]=s*q
            l=(k@q)/math.sqrt(D); w=torch.softmax(l,0); o=w@v
            W.append(w[p].item()); C.append(torch.nn.functional.cosine_similarity(o,v[p],0).item())
            k[p]=kk
        W=torch.tensor(W);C=torch.tensor(C)
        print(n,s,"w>=0.5:",(W>=0.5).float().mean().item(),"cos>0.5:",(C>0.5).float().mean().item(),"cos>0.9:",(C>0.9).float().mean().item(),"min w %.3f med w %.3f"%(W.min(),W.median()),flush=True)
