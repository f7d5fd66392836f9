"""``tinlib doctor``: does this machine compute TIN correctly, fast enough, and read the data?

Before a long run it answers, per device (the CPU and every visible GPU): do the interlace op's
backends (eager PyTorch, Triton on CUDA) match the op's definition at the shapes TIN-R50 gives
them, in float32, float16 and bfloat16, forward and backward; does TIN's temporal module as one
fused op (what a CPU training runs) match its composed steps; how much memory bandwidth does
the op reach on a GPU; do a few TIN-R50 training steps (float32 and mixed precision) give finite
losses; and do the video/frame decoders read back a video written on the spot.

Modules: ``checks`` (the verdict row), ``environment`` (versions, CPU, GPUs), ``opcheck``,
``blockcheck``, ``bandwidth``, ``train_step``, ``decoders`` (the checks), ``runner`` (what runs where),
``report`` (text table and JSON). The command line is ``tinlib.commands.doctor``.
"""
from tinlib.doctor.checks import FAIL, PASS, RESULTS, SKIPPED, Check
from tinlib.doctor.runner import DEVICE_CHOICES, DoctorReport, run_doctor

__all__ = ["DEVICE_CHOICES", "FAIL", "PASS", "RESULTS", "SKIPPED", "Check", "DoctorReport", "run_doctor"]
