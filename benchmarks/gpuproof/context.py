"""What the stages share during one proof: the device, sizes, folders, budget, and what earlier stages measured."""
from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .core import Budget, Deadline, Results, Stage, deadline
from .plan import Sizes


@dataclass
class Context:
    device: torch.device
    speed: Any                      # reslab's resolved switches (amp, channels_last, compile) for the device
    sizes: Sizes
    tiny: bool
    out: Path
    work: Path
    budget: Budget
    stamp: str                      # makes this invocation's run folders unique
    cifar: str | None = None        # --data for the CIFAR runs (None: none available)
    cifar_what: str = ""
    imagenette: str | None = None   # --imagenette as given
    tta_steps: int = 0
    stage_until: float = 0.0        # monotonic deadline of the stage in progress
    measured: dict[str, Any] = field(default_factory=dict)  # results later stages use
    results: Results | None = None  # written after every part too: a kill mid-stage keeps what is done

    def save(self) -> None:
        if self.results is not None:
            self.results.write()

    def run_defaults(self, name: str) -> dict[str, Any]:
        """Config fields every training run of the proof shares."""
        return {"run.out": str(self.work / "runs"), "run.name": f"{name}-{self.stamp}", "run.device": str(self.device),
                "run.progress": not self.tiny, "run.tensorboard": False, "data.cache_dir": str(self.work / "cache")}

    def guarded(self, stage: Stage, name: str, fn: Callable[..., Any], *args: Any) -> bool:
        """fn(*args) until the stage's deadline; a failure or a cut is noted and the stage goes on."""
        # the slack past the deadline lets a training run stop at it gracefully (never past the budget)
        t0 = time.monotonic()
        ok = False
        try:
            with deadline(min(self.stage_until + (5 if self.tiny else 30), self.budget.end() - 2)):
                fn(*args)
            ok = True
        except Deadline:
            stage.note(f"{name}: cut at the stage's deadline after {time.monotonic() - t0:.0f} s")
        except Exception as e:  # noqa: BLE001 - one failing part must not cost the others their results
            where = traceback.extract_tb(e.__traceback__)[-1]
            stage.note(f"{name}: FAILED: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                       f"({Path(where.filename).name}:{where.lineno})")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        if name != stage.title:
            stage.timings[name] = time.monotonic() - t0
        stage.problems += not ok
        self.save()
        return ok
