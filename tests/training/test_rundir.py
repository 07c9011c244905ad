"""One run per folder: an exclusive lock for the run's lifetime, released however the process ends."""
import os
import subprocess
import sys
import time

import pytest

from reslab import ReslabError
from reslab.training.rundir import RunLock, claim_new_run_dir


def test_second_lock_on_a_folder_is_refused_until_released(tmp_path):
    first = RunLock(tmp_path / "run")
    with pytest.raises(ReslabError, match=f"in use by pid {os.getpid()}"):
        RunLock(tmp_path / "run")
    first.release()
    RunLock(tmp_path / "run").release()


def test_lock_of_a_killed_process_is_not_stale(tmp_path):
    code = f"from reslab.training.rundir import RunLock; lock = RunLock(__import__('pathlib').Path({str(tmp_path)!r})); " \
           "print('locked', flush=True); __import__('time').sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(ReslabError, match="in use"):
        RunLock(tmp_path)
    proc.kill()
    proc.wait()
    RunLock(tmp_path).release()  # the kernel released the dead process's lock


def test_outputs_of_a_run_that_died_before_its_first_checkpoint_are_not_appended_to(tmp_path):
    claim_new_run_dir(tmp_path).release()  # a run claimed the folder, wrote these, then died
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 10}\n')
    (tmp_path / "notes.txt").write_text("mine")
    claim_new_run_dir(tmp_path).release()
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "tensorboard").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"  # only reslab's own outputs are removed
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(ReslabError, match="already has checkpoints: pass --resume"):
        claim_new_run_dir(tmp_path)


def test_files_reslab_did_not_write_are_never_deleted(tmp_path):
    folder = tmp_path / "mine"
    (folder / "tensorboard").mkdir(parents=True)
    (folder / "tensorboard" / "events").write_text("a user's own")
    (folder / "config.yaml").write_text("lr: 1\n")
    with pytest.raises(ReslabError, match="which no reslab run wrote there"):
        claim_new_run_dir(folder)
    assert (folder / "config.yaml").read_text() == "lr: 1\n" and (folder / "tensorboard" / "events").is_file()


@pytest.mark.parametrize("where", ["file", "proc"])
def test_an_output_folder_that_cannot_be_written_is_one_line(tmp_path, where):
    from tests.conftest import assert_one_line_error
    out = tmp_path / "f" if where == "file" else "/proc/reslab-run"
    if where == "file":
        out.write_text("not a folder")
    proc = subprocess.run([sys.executable, "-m", "reslab", "train", "--steps", "2", "--out", str(out), "--name", "x",
                           "--run.progress", "false"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert_one_line_error(proc, "cannot write the run folder")
    assert "RunLock" not in proc.stderr and "_fd" not in proc.stderr


def test_two_trainings_started_together_on_one_name_cannot_both_run(tmp_path):
    cmd = [sys.executable, "-m", "reslab", "train", "--model-arg", "depth=8", "--batch-size", "32", "--steps", "150",
           "--out", str(tmp_path), "--name", "dup", "--run.progress", "false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    a = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    b = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    results = [(p.wait(timeout=300), p.stderr.read()) for p in (a, b)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "is in use by pid" in refused and "Traceback" not in refused
    import json
    recs = [json.loads(line) for line in (tmp_path / "dup" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if r["kind"] == "train"] == list(range(10, 151, 10))  # one writer, once


def test_forked_children_do_not_keep_the_lock(tmp_path):
    lock = RunLock(tmp_path)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a DataLoader worker would outlive a SIGKILLed parent for a few seconds
        os.write(ready_w, b"1")  # running (the at-fork hooks have run)
        time.sleep(3)
        os._exit(0)
    assert os.read(ready_r, 1) == b"1"
    os.close(lock._fd)  # the parent dies without unlocking (SIGKILL): only the child's copy could keep the lock
    lock._fd = None
    try:
        RunLock(tmp_path).release()
    finally:
        os.waitpid(pid, 0)
