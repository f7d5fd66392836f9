"""tin-kit: the Temporal Interlacing Network (TIN, AAAI 2020) with TSM and TSN baselines."""

__version__ = "0.1.0"
