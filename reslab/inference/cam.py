"""Class activation maps (Zhou et al., CVPR 2016) and Grad-CAM (Selvaraju et al., ICCV 2017).

A ResNet ends in global average pooling and one linear layer, so the logit of class c is the spatial
mean of  CAM_c(x, y) = sum_k w_ck f_k(x, y)  plus the bias b_c, where f are the last feature maps
(after the final BN-ReLU of pre-activation nets) and w_c the classifier's row c: the CAM is exact and
needs no gradient. Grad-CAM weighs any stage's maps by the spatial mean of the gradient of the logit.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.preprocessing import center_crop
from ..errors import ReslabError
from ..models.resnet import ResNet


@torch.no_grad()
def class_activation_maps(model: ResNet, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """CAMs (N, K, h, w) of `classes` (N, K) for inputs x (N, C, H, W), at the last feature map's resolution."""
    fc = model.get_classifier()
    if not isinstance(fc, torch.nn.Linear):
        raise ReslabError("class activation maps need the model's linear classifier (this one has none)")
    feats = model.eval().forward_features(x).float()            # N, C, h, w
    weights = fc.weight.float()[classes]                         # N, K, C
    return torch.einsum("nkc,nchw->nkhw", weights, feats)


def grad_cam(model: ResNet, x: torch.Tensor, classes: torch.Tensor, stage: int) -> torch.Tensor:
    """Grad-CAM maps (N, K, h_s, w_s) of `classes` (N, K) at stage `stage` (1.. = layer1..)."""
    names = model.stage_names
    if not 1 <= stage <= len(names):
        raise ReslabError(f"Grad-CAM stage {stage} out of range: this model has stages 1..{len(names)}")
    captured: list[torch.Tensor] = []
    handle = getattr(model, names[stage - 1]).register_forward_hook(lambda m, a, out: captured.append(out))
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(x.detach().requires_grad_(True)).float()
            maps = captured[0]
            out = []
            for k in range(classes.shape[1]):
                score = logits.gather(1, classes[:, k:k + 1]).sum()
                (grad,) = torch.autograd.grad(score, maps, retain_graph=k + 1 < classes.shape[1])
                alpha = grad.float().mean(dim=(2, 3), keepdim=True)          # N, C, 1, 1
                out.append(F.relu((alpha * maps.float()).sum(1)).detach())   # N, h, w
    finally:
        handle.remove()
    return torch.stack(out, 1)


def heat_overlay(image: torch.Tensor, cam: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """The map upsampled to the image, scaled to [0, 1], coloured (jet) and blended: (H, W, 3) in [0, 1].
    image: (3, H, W) float in [0, 1]."""
    from matplotlib import colormaps
    h, w = image.shape[-2:]
    m = F.interpolate(cam[None, None].float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    m = (m - m.min()) / (m.max() - m.min()).clamp(min=1e-12)
    colour = torch.from_numpy(colormaps["jet"](m.numpy())[..., :3]).float()
    return (1 - alpha) * image.permute(1, 2, 0) + alpha * colour


def save_cam_figure(path: Path, image: torch.Tensor, cams: torch.Tensor, labels: list[str], title: str = "") -> Path:
    """One PNG: the image, then its heat map for each class (cams: (K, h, w); labels: K captions)."""
    from ..utils.plotting import pyplot
    plt = pyplot()
    k = cams.shape[0]
    fig, axes = plt.subplots(1, k + 1, figsize=(2.6 * (k + 1), 2.9))
    axes[0].imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
    axes[0].set_title(title or "input", fontsize=8)
    for ax, cam, label in zip(axes[1:], cams, labels):
        ax.imshow(heat_overlay(image, cam).clamp(0, 1).numpy())
        ax.set_title(label, fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_cams(im, paths: list[Path], out_dir: str | Path, top_k: int = 3, stage: int | None = None,
               batch_size: int = 16, device: str | torch.device = "cpu") -> list[Path]:
    """For each image file, OUT/<name>.cam.png: the network's input and the CAM (or, with `stage`, the
    Grad-CAM of that stage) of its top-k classes, captioned with class name and probability."""
    if top_k < 1:
        raise ReslabError(f"top_k must be >= 1, got {top_k}")
    dev = torch.device(device)
    model = im.model.to(dev).eval()
    k = min(top_k, len(im.classes))
    written = []
    names = unique_names(paths, ".cam.png")
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        images = im.load(chunk)
        x = im.prepare(images).to(dev)
        with torch.no_grad():
            probs = torch.softmax(model(x).float(), 1)
        p, top = probs.topk(k, dim=1)
        maps = class_activation_maps(model, x, top) if stage is None else grad_cam(model, x, top, stage)
        shown = images.float() / 255 if images.shape[1] == 3 else (images.float() / 255).expand(-1, 3, -1, -1)
        shown = center_crop(shown, x.shape[-1])
        kind = "CAM" if stage is None else f"Grad-CAM, stage {stage}"
        for j, (f, img, cams, ps, ids) in enumerate(zip(chunk, shown, maps.cpu(), p.tolist(), top.tolist())):
            labels = [f"{im.classes[i]} {100 * q:.1f}%" for q, i in zip(ps, ids)]
            written.append(save_cam_figure(Path(out_dir) / names[start + j], img, cams, labels,
                                           f"{Path(f).name} ({kind})"))
    return written


def unique_names(paths: list[Path], suffix: str) -> list[str]:
    """One output name per input: the file's stem, with as many parent folders as it takes to tell
    same-named files apart (a/x.jpg, b/x.jpg -> a_x, b_x), so no output is written over another."""
    parts = [Path(p).resolve().with_suffix("").parts for p in paths]
    depth = 1
    while True:
        names = ["_".join(q[-depth:]) for q in parts]
        if len(set(names)) == len(names) or depth >= max(len(q) for q in parts):
            break
        depth += 1
    counts: dict[str, int] = {}
    out = []
    for n in names:  # the very same file given twice: numbered
        counts[n] = counts.get(n, 0) + 1
        out.append(n + (f"-{counts[n]}" if counts[n] > 1 else "") + suffix)
    return out
