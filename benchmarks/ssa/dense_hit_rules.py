"""Dense attention's hit rules against needle strength on the CPU: for one query at the end of n random keys
with one needle key ``s * q``, the needle's softmax weight and the cosine of the output with its value.
Shows why the probe counts a needle found by weight (>= 0.5), not by cosine: random values cancel, so the
cosine passes with a few percent of the weight. Run: ``OMP_NUM_THREADS=1 python benchmarks/ssa/dense_hit_rules.py``
(about a minute per length)."""
import math

import torch

D, TRIALS = 128, 48


def main() -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    for n in (131072, 1048576):
        k, v = torch.randn(n, D, generator=g), torch.randn(n, D, generator=g)
        for s in (0.75, 1.0, 1.25, 1.5, 2.0):
            weights, cosines = [], []
            for _ in range(TRIALS):
                q = torch.randn(D, generator=g)
                p = int(torch.randint(0, n - 1, (1,), generator=g))
                kept = k[p].clone()
                k[p] = s * q
                w = torch.softmax(k @ q / math.sqrt(D), 0)
                weights.append(w[p].item())
                cosines.append(torch.nn.functional.cosine_similarity(w @ v, v[p], 0).item())
                k[p] = kept
            w, c = torch.tensor(weights), torch.tensor(cosines)
            print(n, s, "w>=0.5:", (w >= 0.5).float().mean().item(), "cos>0.5:", (c > 0.5).float().mean().item(),
                  "cos>0.9:", (c > 0.9).float().mean().item(), f"min w {w.min():.3f} med w {w.median():.3f}", flush=True)


if __name__ == "__main__":
    main()
