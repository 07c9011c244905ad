"""`reslab models`, the entry points and the CLI's error handling."""
import json
import subprocess
import sys

from reslab.cli.main import main


def test_models_json_rows_for_chosen_names(capsys):
    assert main(["models", "--json", "resnet20", "resnet50@1x1", "resnet18d"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["resnet20"]["params"] == 269_722 and round(rows["resnet20"]["macs"] / 1e6, 2) == 40.55
    assert rows["resnet50@1x1"]["paper_macs"] == "3.8G" and rows["resnet18d"]["params"] == 11_708_744


def test_models_json_lists_every_preset_with_params_and_macs(capsys):
    from reslab import list_models
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows}
    assert set(list_models()) <= names and "resnet50@1x1" in names
    r20 = next(r for r in rows if r["name"] == "resnet20")
    assert r20["params"] == 269_722 and round(r20["macs"] / 1e6, 2) == 40.55 and r20["paper_params"] == "0.27M"


def test_models_table_for_chosen_names(capsys):
    assert main(["models", "resnet56", "resnet74"]) == 0
    out = capsys.readouterr().out
    assert "853,018" in out and "resnet74" in out and "125.49M" in out


def test_unknown_model_is_a_one_line_error(capsys):
    assert main(["models", "resnt50"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reslab: error: unknown model 'resnt50'") and "\n" not in err


def test_python_dash_m_and_version():
    out = subprocess.run([sys.executable, "-m", "reslab", "models", "--filter", "resnet18d", "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert [r["name"] for r in json.loads(out)] == ["resnet18d"]
    v = subprocess.run([sys.executable, "-m", "reslab", "--version"], capture_output=True, text=True, check=True)
    assert v.stdout.startswith("reslab ")
