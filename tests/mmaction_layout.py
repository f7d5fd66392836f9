"""Test helpers written from the published facts of MMAction2's TIN-R50 checkpoints (key names and
shapes) and of TIN's formulas, independently of tinlib's own mapping code."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

STAGES = [(64, 3), (128, 4), (256, 6), (512, 3)]  # planes, blocks (ResNet-50)


def _bn(sd: dict, prefix: str, channels: int, gen: torch.Generator, gamma: float = 1.0) -> None:
    sd[f"{prefix}.weight"] = gamma * (1 + 0.1 * torch.randn(channels, generator=gen))
    sd[f"{prefix}.bias"] = 0.1 * torch.randn(channels, generator=gen)
    sd[f"{prefix}.running_mean"] = 0.1 * torch.randn(channels, generator=gen)
    sd[f"{prefix}.running_var"] = 0.5 + torch.rand(channels, generator=gen)
    sd[f"{prefix}.num_batches_tracked"] = torch.tensor(7)


def _conv(shape: list[int], gen: torch.Generator) -> torch.Tensor:
    fan_in = math.prod(shape[1:])
    return torch.randn(shape, generator=gen) * math.sqrt(2.0 / fan_in)


def mmaction_state_dict(num_classes: int, kind: str = "tin", seed: int = 0, num_segments: int = 8) -> dict:
    """A random state dict with MMAction2's ResNet-50 TIN ("tin") or TSM ("tsm") key layout."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {"backbone.conv1.conv.weight": _conv([64, 3, 7, 7], gen)}
    _bn(sd, "backbone.conv1.bn", 64, gen)
    inplanes = 64
    for stage, (planes, blocks) in enumerate(STAGES, start=1):
        for block in range(blocks):
            cin = inplanes if block == 0 else planes * 4
            p = f"backbone.layer{stage}.{block}"
            if kind == "tin":
                fold, t = cin // 4, num_segments
                sd[f"{p}.conv1.conv.net1.offset_net.conv.weight"] = 0.1 * torch.randn(1, fold, 3, generator=gen)
                sd[f"{p}.conv1.conv.net1.offset_net.conv.bias"] = 0.1 * torch.randn(1, generator=gen)
                sd[f"{p}.conv1.conv.net1.offset_net.fc1.weight"] = torch.randn(t, t, generator=gen) / t
                sd[f"{p}.conv1.conv.net1.offset_net.fc1.bias"] = 0.1 * torch.randn(t, generator=gen)
                sd[f"{p}.conv1.conv.net1.offset_net.fc2.weight"] = torch.randn(2, t, generator=gen)
                sd[f"{p}.conv1.conv.net1.offset_net.fc2.bias"] = torch.randn(2, generator=gen)
                sd[f"{p}.conv1.conv.net1.weight_net.conv.weight"] = 0.1 * torch.randn(2, fold, 3, generator=gen)
                sd[f"{p}.conv1.conv.net1.weight_net.conv.bias"] = 0.1 * torch.randn(2, generator=gen)
                sd[f"{p}.conv1.conv.net2.weight"] = _conv([planes, cin, 1, 1], gen)
            else:
                sd[f"{p}.conv1.conv.net.weight"] = _conv([planes, cin, 1, 1], gen)
            _bn(sd, f"{p}.conv1.bn", planes, gen)
            sd[f"{p}.conv2.conv.weight"] = _conv([planes, planes, 3, 3], gen)
            _bn(sd, f"{p}.conv2.bn", planes, gen)
            sd[f"{p}.conv3.conv.weight"] = _conv([planes * 4, planes, 1, 1], gen)
            _bn(sd, f"{p}.conv3.bn", planes * 4, gen, gamma=0.2)  # small residual branches, as trained nets have
            if block == 0:
                sd[f"{p}.downsample.conv.weight"] = _conv([planes * 4, cin, 1, 1], gen)
                _bn(sd, f"{p}.downsample.bn", planes * 4, gen)
        inplanes = planes * 4
    sd["cls_head.fc_cls.weight"] = 0.01 * torch.randn(num_classes, 2048, generator=gen)
    sd["cls_head.fc_cls.bias"] = 0.01 * torch.randn(num_classes, generator=gen)
    return sd


def expected_tinlib_name(key: str) -> str:
    """Where an MMAction2 key must land in tinlib, spelled out by hand from the two layouts."""
    replacements = [
        ("backbone.conv1.conv.weight", "backbone.conv1.weight"),
        ("backbone.conv1.bn.", "backbone.bn1."),
        (".conv1.conv.net1.", ".conv1.temporal."),
        (".conv1.conv.net2.weight", ".conv1.conv.weight"),
        (".conv1.conv.net.weight", ".conv1.conv.weight"),
        (".conv2.conv.weight", ".conv2.weight"),
        (".conv3.conv.weight", ".conv3.weight"),
        (".conv1.bn.", ".bn1."),
        (".conv2.bn.", ".bn2."),
        (".conv3.bn.", ".bn3."),
        (".downsample.conv.", ".downsample.0."),
        (".downsample.bn.", ".downsample.1."),
    ]
    for old, new in replacements:
        if old in key:
            return key.replace(old, new)
    return key


def naive_interlace(x: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor, fold: int) -> torch.Tensor:
    """The TIN interlace of MMAction2 0.x written as explicit loops.

    x [N, T, C, ...]; offsets [N, 2]; weights [N, T, 2]."""
    n_videos, t_len = x.shape[:2]
    out = x.clone()
    quarter = fold // 4
    for n in range(n_videos):
        for q in range(4):
            offset = float(offsets[n, q % 2]) * (1 if q < 2 else -1)
            k = math.floor(offset)
            frac = offset - k
            chans = slice(q * quarter, (q + 1) * quarter)
            for t in range(t_len):
                def frame(tt: int) -> torch.Tensor:
                    return x[n, tt, chans] if 0 <= tt < t_len else torch.zeros_like(x[n, 0, chans])

                sample = (1 - frac) * frame(t - k) + frac * frame(t - k - 1)
                out[n, t, chans] = sample * weights[n, t, q % 2]
    return out


def _bn_eval(x: torch.Tensor, sd: dict, prefix: str) -> torch.Tensor:
    return F.batch_norm(x, sd[f"{prefix}.running_mean"], sd[f"{prefix}.running_var"],
                        sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], training=False, eps=1e-5)


def mmaction_interlace(h: torch.Tensor, sd: dict, prefix: str, t_len: int) -> torch.Tensor:
    """TIN's interlace on [N*T, C, H, W] computed from MMAction2-named weights (net1.*)."""
    nt, c, hh, ww = h.shape
    fold = c // 4
    desc = h[:, :fold].reshape(nt // t_len, t_len, fold, hh, ww)
    pooled = desc.mean(dim=(3, 4)).permute(0, 2, 1)  # [N, F, T]
    z = F.conv1d(pooled, sd[f"{prefix}.offset_net.conv.weight"], sd[f"{prefix}.offset_net.conv.bias"], padding=1)
    z = z.reshape(-1, t_len)
    z = F.relu(F.linear(z, sd[f"{prefix}.offset_net.fc1.weight"], sd[f"{prefix}.offset_net.fc1.bias"]))
    z = F.linear(z, sd[f"{prefix}.offset_net.fc2.weight"], sd[f"{prefix}.offset_net.fc2.bias"])
    offsets = 4 * (torch.sigmoid(z) - 0.5)
    w = F.conv1d(pooled, sd[f"{prefix}.weight_net.conv.weight"], sd[f"{prefix}.weight_net.conv.bias"], padding=1)
    weights = 2 * torch.sigmoid(w).permute(0, 2, 1)
    full = h.reshape(nt // t_len, t_len, c, hh, ww)
    return naive_interlace(full, offsets, weights, fold).reshape(nt, c, hh, ww)


def mmaction_tin_r50_forward(sd: dict, x: torch.Tensor, t_len: int = 8) -> torch.Tensor:
    """An independent functional forward of MMAction2's TIN-R50 in test mode (eval BN, no
    dropout), straight from its state dict. x: [B, T, 3, H, W] -> [B, K]."""
    h = x.flatten(0, 1)
    h = F.relu(_bn_eval(F.conv2d(h, sd["backbone.conv1.conv.weight"], stride=2, padding=3), sd, "backbone.conv1.bn"))
    h = F.max_pool2d(h, 3, 2, 1)
    for stage, (_, blocks) in enumerate(STAGES, start=1):
        for block in range(blocks):
            p = f"backbone.layer{stage}.{block}"
            stride = 2 if (block == 0 and stage > 1) else 1
            a = mmaction_interlace(h, sd, f"{p}.conv1.conv.net1", t_len)
            a = F.relu(_bn_eval(F.conv2d(a, sd[f"{p}.conv1.conv.net2.weight"]), sd, f"{p}.conv1.bn"))
            a = F.conv2d(a, sd[f"{p}.conv2.conv.weight"], stride=stride, padding=1)
            a = F.relu(_bn_eval(a, sd, f"{p}.conv2.bn"))
            a = _bn_eval(F.conv2d(a, sd[f"{p}.conv3.conv.weight"]), sd, f"{p}.conv3.bn")
            identity = h
            if block == 0:
                identity = F.conv2d(h, sd[f"{p}.downsample.conv.weight"], stride=stride)
                identity = _bn_eval(identity, sd, f"{p}.downsample.bn")
            h = F.relu(a + identity)
    feats = h.mean(dim=(2, 3))
    logits = F.linear(feats, sd["cls_head.fc_cls.weight"], sd["cls_head.fc_cls.bias"])
    return logits.reshape(x.shape[0], t_len, -1).mean(dim=1)
