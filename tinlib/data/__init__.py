"""Data: annotation lists, frame sampling, decoding, transforms, datasets and loaders.

Submodules: ``sampling`` (MMAction2 SampleFrames), ``annotations`` (list files), ``decoding``
(JPEG folders, decord/PyAV videos), ``transforms`` (Resize, MultiScaleCrop, Flip, crops, Normalize),
``datasets`` (RawframeDataset, VideoDataset, build_dataset), ``loader`` (build_loader),
``synthetic`` (the embedded temporal dataset) and ``prepare`` (official datasets -> lists, frame
extraction; ``tinlib prepare ...``).
"""
from tinlib.data.annotations import AnnotationError, DataError, Record, load_annotations, write_rawframe_list, \
    write_video_list
from tinlib.data.datasets import ClipDataset, RawframeDataset, VideoDataset, build_dataset
from tinlib.data.decoding import DecodeError, decode_rawframes, decode_video, imread_rgb, open_video
from tinlib.data.loader import build_loader
from tinlib.data.sampling import sample_frames, sample_views
from tinlib.data.transforms import MEAN, STD

__all__ = ["sample_frames", "sample_views", "build_dataset", "build_loader", "RawframeDataset", "VideoDataset",
           "ClipDataset", "load_annotations", "write_rawframe_list", "write_video_list", "Record", "DataError",
           "AnnotationError", "DecodeError", "decode_rawframes", "decode_video", "open_video", "imread_rgb",
           "MEAN", "STD"]
