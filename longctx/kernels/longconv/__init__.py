"""Long-convolution family: causal depthwise convolution with filters as long as the input (S4, Hyena).

Layout channels first, as ``torch.nn.Conv1d``: u ``[B, C, T]``, filter k ``[C, L]``, skip D ``[C]``; S4D
parameters log_dt ``[C]``, A and C ``[C, N]`` complex, state ``[B, C, N]`` complex. ``long_conv`` runs by FFT
(PyTorch, O(T log T), autograd) or by the Triton direct kernel for short filters (O(T · L)); ``long_conv_last``
is one output position by a dot product over the kept inputs (Hyena's decoding, O(T)); ``s4d_*`` materialise
the S4D kernel, prefill with state hand-over and decode by the diagonal recurrence (O(N) per token).
"""

from longctx.kernels.longconv.ops import DIRECT_MAX_TAPS, long_conv, long_conv_last
from longctx.kernels.longconv.s4d import s4d_kernel, s4d_prefill, s4d_step

__all__ = ["DIRECT_MAX_TAPS", "long_conv", "long_conv_last", "s4d_kernel", "s4d_prefill", "s4d_step"]
