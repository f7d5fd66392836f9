"""``tinlib doctor``: does this machine compute TIN correctly, fast enough, and read the data?

Per device: the interlace op's backends and TIN's one-op module against their definitions, the
op's memory bandwidth on a GPU, a few TIN-R50 training steps, and the decoders on a video written
on the spot. ``runner`` decides what runs where, ``report`` prints it; the command is
``tinlib.commands.doctor``."""
from tinlib.doctor.checks import FAIL, PASS, RESULTS, SKIPPED, Check
from tinlib.doctor.runner import DEVICE_CHOICES, DoctorReport, run_doctor

__all__ = ["DEVICE_CHOICES", "FAIL", "PASS", "RESULTS", "SKIPPED", "Check", "DoctorReport", "run_doctor"]
