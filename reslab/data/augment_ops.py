"""The image ops of torchvision's auto-augment policies, batched with one magnitude per sample.

Every op works on a float32 batch N x C x H x W in one of two forms, as torchvision's kernels do:
`quant=True`: a uint8 batch converted to float (values 0..255), each op truncating or rounding to
whole values exactly where torchvision's uint8 kernel casts back to uint8, so that a chain of ops
equals torchvision's chain on uint8 tensors; `quant=False`: a float batch in [0, 1], no casts.
Magnitudes are float64 tensors of length N (the op's argument, e.g. the brightness factor).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _per(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-sample value (N,) as an (N, 1, 1, 1) tensor of `like`'s dtype and device."""
    return v.to(device=like.device, dtype=like.dtype).view(-1, 1, 1, 1)


def _bound(quant: bool) -> float:
    return 255.0 if quant else 1.0


def _clamp_cast(x: torch.Tensor, quant: bool) -> torch.Tensor:
    """torchvision's `clamp_(0, bound)` followed, for uint8, by `.to(uint8)` (a truncation)."""
    x = x.clamp_(0, _bound(quant))
    return x.trunc_() if quant else x


def _blend(a: torch.Tensor, b: torch.Tensor, ratio: torch.Tensor, quant: bool) -> torch.Tensor:
    """a * ratio + b * (1 - ratio), clamped: torchvision's `_blend` with a per-sample ratio. The sum is
    one fused multiply-add, as torch's `add_(b, alpha=...)` computes it: a separate product and sum
    rounds differently and flips the truncated uint8 value of ~1e-3 of the pixels."""
    return _clamp_cast(torch.addcmul(a * _per(ratio, a), b, _per(1.0 - ratio, a)), quant)


def grayscale(x: torch.Tensor, quant: bool) -> torch.Tensor:
    """ITU-R 601-2 luma (N, 1, H, W), floored for uint8 as torchvision's colour ops do."""
    if x.shape[1] == 1:
        return x.clone()
    r, g, b = x.unbind(1)
    lum = r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(1)
    return lum.floor_() if quant else lum


def brightness(x: torch.Tensor, factor: torch.Tensor, quant: bool) -> torch.Tensor:
    return _clamp_cast(x * _per(factor, x), quant)


def color(x: torch.Tensor, factor: torch.Tensor, quant: bool) -> torch.Tensor:
    """Saturation: blend with the grayscale image."""
    return x if x.shape[1] == 1 else _blend(x, grayscale(x, quant), factor, quant)


def contrast(x: torch.Tensor, factor: torch.Tensor, quant: bool) -> torch.Tensor:
    """Blend with the mean of the grayscale image."""
    return _blend(x, grayscale(x, quant).mean(dim=(-3, -2, -1), keepdim=True), factor, quant)


def sharpness(x: torch.Tensor, factor: torch.Tensor, quant: bool) -> torch.Tensor:
    """Blend the interior with a 3x3 smoothed image (PIL's SMOOTH kernel); the border is kept."""
    c, h, w = x.shape[1:]
    if h <= 2 or w <= 2:
        return x
    a, b = 1.0 / 13.0, 5.0 / 13.0
    kernel = torch.tensor([[a, a, a], [a, b, a], [a, a, a]], dtype=x.dtype, device=x.device).expand(c, 1, 3, 3)
    blurred = F.conv2d(x, kernel, groups=c)
    if quant:
        blurred = blurred.round_()
    out = x.clone()
    inner = out[..., 1:-1, 1:-1]
    inner.copy_(torch.addcmul(inner, blurred - inner, _per(1.0 - factor, x)))  # fused, as torch's add_(alpha=)
    return _clamp_cast(out, quant)


def posterize(x: torch.Tensor, bits: torch.Tensor, quant: bool) -> torch.Tensor:
    """Keep the `bits` high bits (uint8: x & mask, written as a floor to a multiple of 2^(8 - bits))."""
    bits = bits.round().clamp(0, 8)
    if quant:
        step = _per(torch.pow(2.0, 8 - bits), x)
        return torch.floor(x / step) * step
    levels = _per(torch.pow(2.0, bits), x)
    return x.mul(levels).floor_().clamp_(min=torch.zeros_like(levels), max=levels - 1).mul_(1.0 / levels)


def solarize(x: torch.Tensor, threshold: torch.Tensor, quant: bool) -> torch.Tensor:
    """Invert the pixels >= threshold (in the batch's own scale: 0..255 or 0..1)."""
    return torch.where(x >= _per(threshold, x), _bound(quant) - x, x)


def autocontrast(x: torch.Tensor, quant: bool) -> torch.Tensor:
    """Stretch each channel to the full range (channels with a single value are kept)."""
    bound = _bound(quant)
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    flat = hi == lo
    inv_scale = (hi - lo).mul_(1.0 / bound)
    lo = lo.masked_fill(flat, 0.0)
    inv_scale = inv_scale.masked_fill(flat, 1.0)
    return _clamp_cast((x - lo).div_(inv_scale), quant)


def equalize(x: torch.Tensor, quant: bool) -> torch.Tensor:
    """Histogram equalisation per channel by PIL's lookup-table rule (torchvision's batched kernel)."""
    u8 = x.long() if quant else x.mul(255 + 1.0 - 1e-3).long()  # torchvision's float -> uint8 rule
    flat = u8.flatten(-2)
    hist = torch.zeros(flat.shape[:-1] + (256,), dtype=torch.int32, device=x.device)
    hist.scatter_add_(-1, flat, torch.ones_like(flat, dtype=torch.int32))
    cum = hist.cumsum(-1)
    last = cum.argmax(-1, keepdim=True)  # the largest value present
    step = torch.div(flat.shape[-1] - hist.gather(-1, last), 255, rounding_mode="floor")
    lut = torch.div(cum[..., :-1] + step // 2, step.clamp(min=1), rounding_mode="floor").clamp_(0, 255)
    lut = torch.cat([torch.zeros_like(lut[..., :1]), lut], -1)
    out = torch.where(step != 0, lut.gather(-1, flat), flat).view_as(u8).to(x.dtype)
    return out if quant else out.mul_(1.0 / 255)


# ------------------------------------------------------------------------------------------------
# Geometry: torchvision's affine/rotate (inverse matrix about a centre, nearest sampling, fill 0).

def inverse_affine(center: tuple[torch.Tensor, torch.Tensor], angle: torch.Tensor,
                   translate: tuple[torch.Tensor, torch.Tensor], shear: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """torchvision's `_get_inverse_affine_matrix` (scale 1) for N samples: (N, 6) float64, degrees in."""
    rot, sx, sy = torch.deg2rad(angle), torch.deg2rad(shear[0]), torch.deg2rad(shear[1])
    cx, cy = center
    tx, ty = translate
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -(a * torch.tan(sx) + torch.sin(rot))
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = torch.cos(rot) - c * torch.tan(sx)
    m = torch.stack([d, -b, torch.zeros_like(a), -c, a, torch.zeros_like(a)], 1)
    m[:, 2] += cx - m[:, 0] * (cx + tx) - m[:, 1] * (cy + ty)
    m[:, 5] += cy - m[:, 3] * (cx + tx) - m[:, 4] * (cy + ty)
    return m


def warp(x: torch.Tensor, matrix: torch.Tensor, quant: bool) -> torch.Tensor:
    """Nearest-neighbour warp of each image by its inverse matrix (N, 6), outside filled with 0:
    torchvision's `_affine_grid` + `grid_sample`, batched."""
    n, _, h, w = x.shape
    theta = matrix.to(dtype=x.dtype).view(n, 2, 3).to(x.device)
    base = torch.empty(1, h, w, 3, dtype=x.dtype, device=x.device)
    base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=x.device))
    base[..., 1].copy_(torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=x.device).unsqueeze_(-1))
    base[..., 2].fill_(1)
    scaled = theta.transpose(1, 2).div(torch.tensor([0.5 * w, 0.5 * h], dtype=x.dtype, device=x.device))
    grid = base.view(1, h * w, 3).expand(n, -1, -1).bmm(scaled).view(n, h, w, 2)
    out = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out.round_() if quant else out


def rotate(x: torch.Tensor, angle: torch.Tensor, quant: bool) -> torch.Tensor:
    """Counter-clockwise by `angle` degrees about the centre; torchvision's exact fast paths for
    multiples of 90 degrees (rot90), the warp otherwise."""
    n, _, h, w = x.shape
    angle = torch.remainder(angle, 360.0)
    zero = torch.zeros_like(angle)
    out = warp(x, inverse_affine((zero, zero), -angle, (zero, zero), (zero, zero)), quant)
    fast = {0.0: 0, 180.0: 2} if h != w else {0.0: 0, 90.0: 1, 180.0: 2, 270.0: 3}
    for deg, k in fast.items():
        sel = _per((angle == deg).double(), x).bool()
        if sel.any():
            out = torch.where(sel, torch.rot90(x, k=k, dims=(-2, -1)), out)
    return out


def shear(x: torch.Tensor, m: torch.Tensor, axis: int, quant: bool) -> torch.Tensor:
    """Shear by m (the tangent) about the top-left corner, as the policies call torchvision's affine."""
    n, _, h, w = x.shape
    deg = torch.rad2deg(torch.atan(m))
    zero = torch.zeros_like(m)
    corner = (torch.full_like(m, -0.5 * w), torch.full_like(m, -0.5 * h))
    sh = (deg, zero) if axis == 0 else (zero, deg)
    return warp(x, inverse_affine(corner, zero, (zero, zero), sh), quant)


def translate(x: torch.Tensor, m: torch.Tensor, axis: int, quant: bool) -> torch.Tensor:
    """Shift by int(m) pixels (truncated, as the policies pass `int(magnitude)`)."""
    zero = torch.zeros_like(m)
    t = torch.trunc(m)
    shift = (t, zero) if axis == 0 else (zero, t)
    return warp(x, inverse_affine((zero, zero), zero, shift, (zero, zero)), quant)


def _check(x: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected an N x (1|3) x H x W batch, got {tuple(x.shape)}")


OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
       "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
_FNS = {
    "Identity": lambda x, m, q: x,
    "ShearX": lambda x, m, q: shear(x, m, 0, q), "ShearY": lambda x, m, q: shear(x, m, 1, q),
    "TranslateX": lambda x, m, q: translate(x, m, 0, q), "TranslateY": lambda x, m, q: translate(x, m, 1, q),
    "Rotate": rotate,
    "Brightness": lambda x, m, q: brightness(x, 1.0 + m, q), "Color": lambda x, m, q: color(x, 1.0 + m, q),
    "Contrast": lambda x, m, q: contrast(x, 1.0 + m, q), "Sharpness": lambda x, m, q: sharpness(x, 1.0 + m, q),
    "Posterize": posterize,
    "Solarize": lambda x, m, q: solarize(x, _bound(q) * m, q),
    "AutoContrast": lambda x, m, q: autocontrast(x, q), "Equalize": lambda x, m, q: equalize(x, q),
}


def apply_op(x: torch.Tensor, name: str, magnitude: torch.Tensor, quant: bool) -> torch.Tensor:
    """One policy op on every sample of x, with the policies' signed magnitude per sample (torchvision's
    `_apply_image_or_video_transform`: brightness factor 1 + m, solarize threshold bound * m, ...)."""
    return _FNS[name](x, magnitude.to(torch.float64), quant)


def apply_ops(images: torch.Tensor, ops: torch.Tensor, magnitudes: torch.Tensor) -> torch.Tensor:
    """Sample i gets op OPS[ops[i]] with magnitude magnitudes[i]: uint8 in, uint8 out (float in [0, 1]
    in, float out). Samples are grouped by op: one batched call per op present."""
    _check(images)
    quant = images.dtype == torch.uint8
    x = images.to(torch.float32) if quant else images.clone()
    ops, magnitudes = ops.cpu(), magnitudes.cpu().to(torch.float64)
    for k in ops.unique().tolist():
        if OPS[k] == "Identity":
            continue
        idx = (ops == k).nonzero()[:, 0]
        dev_idx = idx.to(x.device)
        x.index_copy_(0, dev_idx, apply_op(x.index_select(0, dev_idx), OPS[k], magnitudes[idx], quant))
    return x.to(torch.uint8) if quant else x


__all__ = ["OPS", "apply_op", "apply_ops"]
