"""TIN, TSM and TSN recognizers on torchvision ResNets."""
from tinlib.models.backbone import ResNetBackbone, build_backbone
from tinlib.models.head import TSMHead
from tinlib.models.recognizer import Recognizer, build_recognizer, parse_arch
from tinlib.models.temporal import OffsetNet, TemporalConv, TemporalInterlace, TemporalShift, WeightNet

__all__ = ["ResNetBackbone", "build_backbone", "TSMHead", "Recognizer", "build_recognizer", "parse_arch",
           "OffsetNet", "WeightNet", "TemporalInterlace", "TemporalShift", "TemporalConv"]
