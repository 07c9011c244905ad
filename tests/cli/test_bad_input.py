"""Every command, fed user mistakes: exit code 2 and one error line on stderr, never a traceback.

The commands run in-process (main(argv)): an exception escaping main() would be a traceback for the
user, and fails the test as one."""
import argparse

import numpy as np
import pytest
from PIL import Image

from reslab import create_model, save_weights
from reslab.cli.main import main
from reslab.training import build_config
from reslab.training.config import to_yaml


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    weights = d / "digits.safetensors"
    meta = {"classes": [str(i) for i in range(10)], "train_config": to_yaml(build_config("default")),
            "preprocess": {"mean": [0.3] * 3, "std": [0.38] * 3, "image_size": 16, "crop": 16}}
    save_weights(create_model("resnet20", depth=8), weights, name="resnet20", extra=meta)
    image = d / "cat.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(image)
    return {"W": str(weights), "IMG": str(image), "DIR": str(d)}


CASES = [  # argv (W: weights, IMG: an image, DIR: a folder), what the error line must say
    ("train --batch-size 5000", "cannot fill one batch of 5000"),
    ("train --batch-size 0", "batch_size=0 must be > 0"),
    ("train --run.eval_batch 0", "run.eval_batch=0 must be > 0"),
    ("train --run.eval_every -5", "run.eval_every=-5 must be >= 0"),
    ("train --lr abc", "optim.lr: expected float"),
    ("train --seeds a,b", "--seeds 'a,b'"),
    ("train --model resnet21", "depth must be 6n+2"),
    ("train --model resnet", "unknown model 'resnet'"),
    ("train --recipe nope", "unknown recipe 'nope'"),
    ("train --data /no/such/folder", "no such file or folder"),
    ("train --model-arg foo", "expected KEY=VALUE"),
    ("train --no-such-option 3", "unknown option --no-such-option"),
    ("finetune --steps 3", "needs --weights"),
    ("eval --weights /no/such.pth", "no weights at"),
    ("eval --weights W --batch-size 0", "must be >= 1"),
    ("eval --weights W --batch-size -1", "must be >= 1"),
    ("eval --weights W --split val", "has no val split"),
    ("eval --weights W --split bogus", "invalid choice"),
    ("predict IMG --weights W --top-k 0", "must be >= 1"),
    ("predict IMG --weights W --top-k -1", "must be >= 1"),
    ("predict IMG --weights W --batch-size -1", "must be >= 1"),
    ("predict DIR/missing.jpg --weights W", "no such file or folder"),
    ("predict IMG --weights W --image-size 0", "must be >= 1"),
    ("features IMG --weights W --out DIR/x.txt", "use a .npy or .safetensors"),
    ("features IMG --weights W --out DIR/x.npy --batch-size 0", "must be >= 1"),
    ("export --weights W --format bad", "invalid choice"),
    ("export --weights W --out DIR/m.onnx", "needs real images: pass --data"),
    ("export --weights W --tolerance -1 --no-verify", "must be > 0"),
    ("experiment nope --data digits", "unknown experiment 'nope'"),
    ("experiment degradation --data digits --set optim.lrr=1", "unknown config field 'optim.lrr'"),
    ("experiment degradation --data digits --seeds x", "--seeds 'x'"),
    ("analyze gradients resnet21 --data digits", "depth must be 6n+2"),
    ("analyze gradients resnet20 --batch 0", "must be >= 1"),
    ("analyze responses DIR/none", "no weights at"),
    ("models resnet21", "depth must be 6n+2"),
]


@pytest.mark.parametrize("argv,says", CASES, ids=[c[0] for c in CASES])
def test_user_mistakes_are_one_line_errors(files, argv, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything a command might write lands here
    def expand(token):  # W, IMG, DIR/... -> the fixture's files
        head, sep, rest = token.partition("/")
        return files[head] + sep + rest if head in files else token

    args = [expand(t) for t in argv.split()]
    args = args + (["--out", str(tmp_path / "runs"), "--run.progress", "false"] if args[0] == "train" else [])
    try:
        code = main(args)
    except SystemExit as e:  # argparse: a bad value for a typed option
        code = e.code
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2, err
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert says in errors[0], errors[0]
    if args[0] == "experiment":
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_help_of_every_command_explains_every_option(capsys):
    from reslab.cli.main import build_parser
    def walk(name, parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(f"{name} {sub_name}", sub)
            elif action.option_strings and action.help != argparse.SUPPRESS and action.dest not in ("help", "version"):
                assert action.help and action.help.strip() and not action.help.startswith("="), (name, action.option_strings)

    walk("reslab", build_parser())
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--model V = --model" not in capsys.readouterr().out
