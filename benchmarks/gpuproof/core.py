"""What every stage shares: the time budget, the deadline guard, results written as they arrive, timing."""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


class Deadline(BaseException):
    """The time given to a stage (or the whole proof) ran out, or a SIGTERM asked the proof to end."""
    # a BaseException, like KeyboardInterrupt: raised by the timer wherever the main thread is, inside
    # torch.compile too, where Dynamo and Inductor wrap every Exception (BackendCompilerFailed, ...) and the
    # stage would report a FAILED part instead of a cut one; no `except Exception` can swallow it either


# ---- stopping on a signal ----------------------------------------------------------------------------------------
# A SIGTERM (the device tool's time limit, when less device time is left than the command's timeout) or a
# Ctrl-C that reaches reslab's trainer ends the proof like the deadline: what is measured is kept and written,
# nothing new starts. The first request wins.

_STOP: list[tuple[float, str, int]] = []  # (monotonic time, why, exit code)
_GUARDED = [0]  # depth of parts running under Context.guarded: a SIGTERM there raises Deadline


def request_stop(why: str, code: int = 130) -> None:
    if not _STOP:
        _STOP.append((time.monotonic(), why, code))


def stop_reason() -> str | None:
    return _STOP[0][1] if _STOP else None


def stop_code() -> int:
    return _STOP[0][2] if _STOP else 0


def reset_stop() -> None:
    _STOP.clear()


@contextmanager
def guarded_scope() -> Iterator[None]:
    _GUARDED[0] += 1
    try:
        yield
    finally:
        _GUARDED[0] -= 1


def on_sigterm(signum, frame) -> None:
    """SIGTERM: stop like the deadline. Inside a part it is cut (Deadline); elsewhere the next check stops."""
    # during a training run reslab's trainer holds SIGTERM itself: it stops at the next step, saves a
    # checkpoint and raises Interrupted, which runs.run_training turns into a request_stop
    request_stop("SIGTERM (the device tool's time limit?)", 143)
    if _GUARDED[0]:
        raise Deadline("SIGTERM")


class Budget:
    """Seconds left of the whole proof, counted from the start of the process; a stop request ends it."""

    def __init__(self, total_s: float, start: float) -> None:
        self.total_s, self.start = float(total_s), start

    def end(self) -> float:
        end = self.start + self.total_s
        return min(end, _STOP[0][0]) if _STOP else end

    def left(self) -> float:
        return self.end() - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start


@contextmanager
def deadline(at: float, graceful: bool = False, grace_s: float = 30.0) -> Iterator[list[bool]]:
    """Run the body until monotonic time `at`; yields a list that holds True once the deadline has fired."""
    # graceful: SIGINT first, which reslab's trainer takes as Ctrl-C (it stops at the next step and saves a
    # checkpoint); Deadline only if the body still runs grace_s later. The grace never reaches past an
    # enclosing deadline: it ends a second before that one (so that its holder can still write what the body
    # measured), and with under a second left there is no SIGINT, only Deadline. Nested deadlines: the
    # enclosing one's timer is put back afterwards, less the time spent.
    entered = time.monotonic()
    remaining = at - entered
    if remaining <= 0:
        raise Deadline("no time left")
    fired: list[bool] = []
    outer_at = math.inf  # the enclosing deadline's time, once known

    def on_alarm(signum, frame) -> None:
        if graceful and not fired:
            fired.append(True)
            grace = min(grace_s, outer_at - time.monotonic() - 1.0)
            if grace > 0:
                signal.setitimer(signal.ITIMER_REAL, grace)
                signal.raise_signal(signal.SIGINT)
                return
        if not fired:
            fired.append(True)
        raise Deadline("deadline reached")

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, remaining)
    outer_at = entered + outer if outer > 0 else math.inf
    if 0 < outer < remaining:  # the enclosing deadline comes first: keep it
        signal.setitimer(signal.ITIMER_REAL, outer)
    try:
        yield fired
    except KeyboardInterrupt:
        if not fired:  # a real Ctrl-C: let it stop the proof
            raise
        raise Deadline("deadline reached") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if outer > 0:
            signal.setitimer(signal.ITIMER_REAL, max(1e-3, outer - (time.monotonic() - entered)))


# torch's loggers of the CUDA-graph wrapping ("cudagraphs" artifact): why a graph was skipped (a CPU tensor, a
# mutated input, dynamic shapes, ...). They are off by default and do not propagate: a handler on them sees
# their warnings all the same
CUDAGRAPH_LOGGERS = tuple(f"torch._inductor.{m}.__cudagraphs" for m in
                          ("cudagraph_utils", "cudagraph_trees", "scheduler", "compile_fx", "output_code"))


@contextmanager
def captured_logs(names: tuple[str, ...] = CUDAGRAPH_LOGGERS, level: int = logging.WARNING,
                  suffix: str = ".__cudagraphs") -> Iterator[list[str]]:
    """The distinct messages (at `level` or above) of the named loggers while the body runs."""
    msgs: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                msg = record.getMessage()
            except Exception:  # noqa: BLE001 - a badly formatted record must not break a measurement
                msg = str(record.msg)
            msg = " ".join(msg.split())[:300]
            if msg and msg not in msgs:
                msgs.append(msg)

    try:  # the artifact loggers registered so far, whatever their module (torch versions differ)
        from torch._logging._internal import log_registry
        names = tuple(dict.fromkeys(names + tuple(n for n in log_registry.get_artifact_log_qnames()
                                                  if n.endswith(suffix))))
    except Exception:  # noqa: BLE001 - private API: the fixed names still work
        pass
    handler = Keep(level)
    loggers = [logging.getLogger(n) for n in names]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        yield msgs
    finally:
        for lg in loggers:
            lg.removeHandler(handler)


@dataclass
class Table:
    title: str
    columns: list[tuple[str, str]]  # (key, header)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def markdown(self) -> str:
        head = "| " + " | ".join(h for _, h in self.columns) + " |"
        rule = "|" + "|".join("---" for _ in self.columns) + "|"
        body = ["| " + " | ".join(fmt(r.get(k, "")) for k, _ in self.columns) + " |" for r in self.rows]
        return "\n".join([f"**{self.title}**", "", head, rule, *body])


@dataclass
class Stage:
    """One stage's results: facts (key: value), tables and notes (skips, tolerances, caveats)."""

    key: str
    title: str
    status: str = "running"  # running | done | partial | skipped | failed
    seconds: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: int = 0  # parts that failed or were cut
    timings: dict[str, float] = field(default_factory=dict)  # seconds per part

    def table(self, title: str, columns: list[tuple[str, str]]) -> Table:
        t = Table(title, columns)
        self.tables.append(t)
        return t

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def markdown(self) -> str:
        parts = [f"## {self.title}: {self.status} ({self.seconds:.0f} s)"]
        if self.facts:
            parts.append("\n".join(f"- {k}: {fmt(v)}" for k, v in self.facts.items()))
        parts += [t.markdown() for t in self.tables if t.rows]
        if self.timings:
            parts.append("Time per part: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.timings.items()))
        if self.notes:
            parts.append("Notes:\n" + "\n".join(f"- {n}" for n in self.notes))
        return "\n\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "status": self.status, "seconds": round(self.seconds, 2), "facts": self.facts,
                "tables": [{"title": t.title, "columns": [k for k, _ in t.columns], "rows": t.rows}
                           for t in self.tables],
                "notes": self.notes, "timings": {k: round(v, 2) for k, v in self.timings.items()}}


class Results:
    """gpu_proof.json and gpu_proof.md in the output folder, rewritten atomically after every stage and part."""
    # two files, not one per stage: the device tool brings back at most 8 files from its output folder

    def __init__(self, out: Path, meta: dict[str, Any]) -> None:
        self.out, self.meta, self.stages = out, meta, []
        out.mkdir(parents=True, exist_ok=True)

    def add(self, stage: Stage) -> None:
        self.stages.append(stage)

    def write(self) -> None:
        doc = {"meta": self.meta, "stages": {s.key: s.to_json() for s in self.stages}}
        atomic_write(self.out / "gpu_proof.json", json.dumps(clean(doc), indent=1))
        head = "# reslab GPU proof\n\n" + "\n".join(f"- {k}: {fmt(v)}" for k, v in self.meta.items())
        atomic_write(self.out / "gpu_proof.md", "\n\n".join([head] + [s.markdown() for s in self.stages]) + "\n")


def atomic_write(path: Path, text: str) -> None:
    """Write beside `path`, then rename over it: a reader (or a kill) never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def clean(obj: Any) -> Any:
    """JSON without NaN/inf (strict parsers refuse them) and with plain types only."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return str(obj)


def fmt(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v == 0:
            return "0"
        if abs(v) < 1e-2:
            return f"{v:.1e}"
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.3g}"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v).replace("|", "/")


def sync(device: torch.device) -> None:
    """Wait for the device: CUDA work is asynchronous, so a host clock read without this times the launches."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], steps: int, device: torch.device) -> float:
    """Seconds for `steps` calls of fn, the device synchronised before and after."""
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return time.perf_counter() - t


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
