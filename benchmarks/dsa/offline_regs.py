"""Offline sm_90 compile of DSA's row-stage kernel at T = 128K shapes (no GPU needed): registers, spills, shared
memory (``ptxas -v``, ``cuobjdump -res-usage``; Triton's own ptxas). Cubin, PTX and SASS go to /tmp/offc.

Run: ``PYTHONPATH=$PWD python -m benchmarks.dsa.offline_regs ROWS:WORDS:SLOTS:RESCORE:WARPS:STAGES ...``
(the default shape: ``1:128:128:32:1:2``)
"""
import inspect
import os
import subprocess
import sys

import triton
from triton.compiler import ASTSource
from triton.backends.compiler import GPUTarget

from longctx.kernels.dsa.triton_rows import _select_rows

BIN = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin")


def build(fn, ptr_types, consts, warps, stages, name):
    """Compile fn for sm_90 (pointers and strides divisible by 16, as the JIT specializes them) and print its resources."""
    params = list(inspect.signature(fn.fn).parameters)
    sig, attrs = {}, {}
    for i, p in enumerate(params):
        if p in consts:
            sig[p] = "constexpr"
        elif p in ptr_types:
            sig[p] = ptr_types[p]
            attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            sig[p] = "i32"
            if p.startswith("stride"):
                attrs[(i,)] = [["tt.divisibility", 16]]
    src = ASTSource(fn=fn, signature=sig, constexprs={(params.index(k),): v for k, v in consts.items()}, attrs=attrs)
    k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps, "num_stages": stages})
    os.makedirs("/tmp/offc", exist_ok=True)
    path = f"/tmp/offc/{name}.cubin"
    open(path, "wb").write(k.asm["cubin"])
    open(f"/tmp/offc/{name}.ptx", "w").write(k.asm["ptx"])
    info = subprocess.run([f"{BIN}/ptxas", "-arch=sm_90a", "-v", f"/tmp/offc/{name}.ptx", "-o", "/dev/null"],
                          capture_output=True, text=True).stderr
    info = [x.split(":", 1)[-1].strip() for x in info.splitlines() if "spill" in x or "Used" in x]
    print(f"{name} (warps {warps}, stages {stages}): {' | '.join(info)} | dynamic shared {k.metadata.shared} B")
    sass = subprocess.run([f"{BIN}/cuobjdump", "-sass", "-res-usage", path], capture_output=True, text=True).stdout
    open(f"/tmp/offc/{name}.sass", "w").write(sass)


def main(shapes: list[str]) -> None:
    P = "*i32"
    for spec in shapes:
        rows, wch, sch, rch, warps, stages = spec.split(":")
        build(_select_rows, {"MASK": P, "QI": "*bf16", "KI": "*bf16", "W": "*bf16", "CID": P, "BID": P, "KEY": P,
                             "CNT": P, "OUT": P},
              dict(HI=4, DI=64, HP=max(16, 4 * int(rows)), ROWS=int(rows), WCH=int(wch), SCH=int(sch), CAP=4096,
                   RCH=int(rch), PRECISION="tf32", INTERP=False), int(warps), int(stages),
              f"select_rows_r{rows}_w{wch}_s{sch}_r{rch}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["1:128:128:32:1:2"])
