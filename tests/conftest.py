import os

import pytest

# Triton kernels run in interpreter mode on machines without CUDA; this must be set before
# triton is imported anywhere.
try:
    import torch

    _has_cuda = torch.cuda.is_available()
except ImportError:  # pragma: no cover
    _has_cuda = False
if not _has_cuda:
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    """The tiny synthetic SthV1 release (11 classes, 22 training videos), written once per session
    for the end-to-end, preemption and fault tests, which only read it."""
    from tinlib.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("synthetic") / "sthv1"
    meta = write_synthetic(root, "sthv1", size="tiny", seed=0, workers=1)
    assert meta["num_classes"] == 11 and meta["num_train"] == 22
    return root
