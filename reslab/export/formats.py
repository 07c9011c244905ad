"""The three export formats: files written from a module and an example input, with a dynamic batch
axis, and a loader that gives back a callable (numpy or torch in, torch out) for verification."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..errors import ReslabError

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "exported-program": ".pt2"}
INPUT, OUTPUT = "images", "logits"


def export_model(module: nn.Module, example: torch.Tensor, fmt: str, path: Path) -> Path:
    """Write `module` (eval mode) in `fmt` to `path`; the batch dimension stays dynamic."""
    if fmt not in FORMATS:
        raise ReslabError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
        if missing:
            raise ReslabError(f"ONNX export needs {' and '.join(missing)}: pip install 'reslab[onnx]'")
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with torch.no_grad(), quiet_exporters():
            if fmt == "onnx":
                torch.onnx.export(module, (example,), str(tmp), input_names=[INPUT], output_names=[OUTPUT],
                                  dynamic_shapes=({0: batch},), dynamo=True, external_data=False, verbose=False)
            elif fmt == "torchscript":
                traced = torch.jit.trace(module, example, check_trace=False)
                torch.jit.save(torch.jit.freeze(traced), str(tmp))
            else:
                ep = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
                torch.export.save(ep, str(tmp))
        tmp.replace(path)
    except ReslabError:
        raise
    except Exception as e:  # exporter internals: report in one line
        raise ReslabError(f"{fmt} export failed: {type(e).__name__}: {str(e).strip().splitlines()[0][:300]}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_exported(path: Path, fmt: str, threads: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function running the exported file: float32 NCHW tensor in, logits tensor out."""
    if fmt == "onnx":
        sess = onnx_session(path, threads)
        name = sess.get_inputs()[0].name
        return lambda x: torch.from_numpy(sess.run(None, {name: x.detach().cpu().float().numpy()})[0])
    if fmt == "torchscript":
        m = torch.jit.load(str(path), map_location="cpu")
        return lambda x: m(x)
    if fmt == "exported-program":
        ep = torch.export.load(str(path))
        mod = ep.module()
        return lambda x: mod(x)
    raise ReslabError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def onnx_session(path: Path, threads: int | None = None):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ReslabError("running ONNX files needs ONNX Runtime: pip install 'reslab[onnx]' "
                          "(or pass --no-verify to export without checking)") from None
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def quiet_exporters():
    """The exporters print progress, log records and warnings meant for their developers; failures
    still raise (and are reported in one line)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)
