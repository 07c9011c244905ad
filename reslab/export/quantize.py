"""Post-training int8 quantisation of an ONNX model with ONNX Runtime: weights per channel,
activations per tensor with ranges calibrated on real images (QDQ format, runs on VNNI/AVX2)."""
from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import numpy as np
import torch

from ..errors import ReslabError
from .formats import INPUT, quiet_exporters

log = logging.getLogger(__name__)
MAX_CALIB_PIXELS = 48 * 224 * 224  # 48 images at 224x224, 2,352 at 32x32


def quantize_onnx(src: Path, dst: Path, calibration: torch.Tensor, batch_size: int = 16,
                  method: str = "percentile") -> Path:
    """Write an int8 copy of the float ONNX model `src` to `dst`, calibrated on `calibration`
    (float32 network inputs, already preprocessed)."""
    try:
        from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise ReslabError("int8 quantisation needs ONNX Runtime: pip install 'reslab[onnx]'") from None
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if method not in methods:
        raise ReslabError(f"unknown calibration method {method!r}; choose one of {', '.join(methods)}")

    # ONNX Runtime's calibrators keep every activation of every calibration image in memory (~150 MiB
    # per 224x224 image for ResNet-50): cap the count so that stays within a few GiB.
    cap = max(16, int(MAX_CALIB_PIXELS / (calibration.shape[-1] * calibration.shape[-2])))
    if len(calibration) > cap:
        log.warning("calibrating on %d of the %d images given (memory: ONNX Runtime keeps every activation)",
                    cap, len(calibration))
        calibration = calibration[:cap]
    batch_size = min(batch_size, len(calibration))
    usable = len(calibration) - len(calibration) % batch_size  # equal batches: the calibrators stack them

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([calibration[i:i + batch_size].numpy().astype(np.float32)
                                 for i in range(0, usable, batch_size)])

        def get_next(self):
            b = next(self.batches, None)
            return None if b is None else {INPUT: b}

    dst.parent.mkdir(parents=True, exist_ok=True)
    pre = dst.with_name(f".{dst.name}.pre.onnx")
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        with quiet_exporters(), contextlib.redirect_stderr(io.StringIO()):
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            # CalibMaxIntermediateOutputs asks the calibrator to fold activations in per batch; measured,
            # it does not bound memory here (ResNet-50 @224 still needed 24 GiB for 256 images): the cap above does
            extra = {"CalibMaxIntermediateOutputs": 1, **({"CalibPercentile": 99.999} if method == "percentile" else {})}
            quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=methods[method], extra_options=extra)
        tmp.replace(dst)
    except ReslabError:
        raise
    except Exception as e:
        raise ReslabError(f"int8 quantisation failed: {type(e).__name__}: {str(e).strip().splitlines()[0][:300]}") from None
    finally:
        pre.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return dst
