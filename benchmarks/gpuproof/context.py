"""What the stages share during one proof: the device, sizes, folders, budget, and what earlier stages measured."""
from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .core import Budget, Deadline, Results, Stage, atomic_write, clean, deadline, guarded_scope, stop_reason
from .plan import SLACK_S, Sizes


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

    def stopping(self) -> str | None:
        """Why the proof is ending early (a SIGTERM, a Ctrl-C that stopped a training run), or None."""
        return stop_reason()

    def guarded(self, stage: Stage, name: str, fn: Callable[..., Any], *args: Any, until: float | None = None,
                slack: float | None = None) -> bool:
        """fn(*args) until `until` (the stage's deadline) + slack; a failure or a cut is noted, the stage goes on."""
        # the slack past the deadline lets a training run stop at it gracefully; never past the budget
        t0 = time.monotonic()
        if self.stopping():
            stage.note(f"{name}: not started, the proof is stopping ({self.stopping()})")
            stage.problems += 1
            return False
        until = self.stage_until if until is None else until
        slack = SLACK_S["tiny" if self.tiny else "default"] if slack is None else slack
        ok = False
        try:
            with guarded_scope(), deadline(min(until + slack, self.budget.end() - 2)):
                fn(*args)
            ok = True
        except Deadline:
            why = f"stopped by {self.stopping()}" if self.stopping() else "cut at its deadline"
            stage.note(f"{name}: {why} after {time.monotonic() - t0:.0f} s")
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

    # ---- speeds that later stages (and a later call with the same --work) plan with ----------------------------

    def save_measured(self) -> None:
        """ctx.measured into --work/measured.json: a rerun of stage 4 alone (same --work) plans with them."""
        doc = {"device": _device_name(self.device), "written": time.strftime("%Y-%m-%d %H:%M:%S"),
               "measured": self.measured}
        try:
            atomic_write(self.work / MEASURED_FILE, json.dumps(clean(doc), indent=1))
        except OSError:
            pass

    def load_measured(self) -> str | None:
        """Speeds of an earlier call on this machine kind (same --work), when this one measured none; what."""
        try:
            doc = json.loads((self.work / MEASURED_FILE).read_text())
        except (OSError, ValueError):
            return None
        if doc.get("device") != _device_name(self.device) or not doc.get("measured", {}).get("cifar"):
            return None
        for k, v in doc["measured"].items():
            self.measured.setdefault(k, v)
        return f"{MEASURED_FILE} in --work, written {doc.get('written', '?')} on {doc['device']}"


MEASURED_FILE = "measured.json"


def _device_name(device: torch.device) -> str:
    if device.type != "cuda":
        return device.type
    try:
        return torch.cuda.get_device_name(device)
    except Exception:  # noqa: BLE001 - torch.cuda mocked in a test
        return "cuda"
