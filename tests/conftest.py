import os

# Triton kernels run in interpreter mode on machines without CUDA; this must be set before
# triton is imported anywhere.
try:
    import torch

    _has_cuda = torch.cuda.is_available()
except ImportError:  # pragma: no cover
    _has_cuda = False
if not _has_cuda:
    os.environ.setdefault("TRITON_INTERPRET", "1")
