"""`diffring reservoir`: one-line errors naming the field, and tiny end-to-end runs whose reported
scores equal a recomputation from the written predictions."""

import json

import numpy as np
import pytest

from diffring._cli import main

TINY = ["--set", "network.n_rings=6", "--set", "network.ring_sizes=[2,4]", "--set", "run.chunk_size=16",
        "--set", "readout.alphas=[0.01]"]  # fmt: skip


@pytest.mark.parametrize(
    "sets, field",
    [
        (["encoder.sizee=4"], "encoder.sizee"),
        (["task.kind=imagenet"], "task.kind"),
        (["encoder.size=12"], "encoder.size"),
        (["network.n_in=3"], "network.n_in"),
        (["features.n_times=7"], "features.n_times"),
        (["encoder.kind=series"], "encoder.kind"),
        (["task.kind=file", "task.path=/nonexistent.npz"], "task.path"),
        (["readout.alphas=[0]"], "readout.alphas[0]"),
    ],
)
def test_bad_config_is_one_line_naming_the_field(tmp_path, capsys, sets, field):
    args = ["reservoir", "--out", str(tmp_path / "o")]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"diffring: error: {field}:")
    assert not (tmp_path / "o").exists()


def test_bad_dataset_file_is_one_line(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", X=np.zeros((4, 5, 1)), y=np.zeros((4, 6)))
    assert main(["reservoir", "--out", str(tmp_path / "o"), "--set", "task.kind=file",
                 "--set", f"task.path={tmp_path / 'd.npz'}"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "task.path[y]" in err
    # not an .npz at all (NumPy called it pickled data, exit 1), and an empty dataset (a NumPy
    # reduction error, exit 1): one line each, naming the file
    (tmp_path / "text.npz").write_text("not an archive")
    np.savez(tmp_path / "empty.npz", images=np.zeros((0, 8, 8)), y=np.zeros(0, int))
    for name, words in (("text.npz", "not an .npz archive"), ("empty.npz", "0 samples")):
        assert main(["reservoir", "--out", str(tmp_path / "o"), "--set", "task.kind=file",
                     "--set", f"task.path={tmp_path / name}"]) == 2  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "task.path" in err and words in err, err
    assert not (tmp_path / "o").exists()


def test_tiny_image_classification_end_to_end(tmp_path, rng):
    # Two classes a linear readout can tell apart: bright top half vs bright bottom half.
    n = 40
    y = rng.integers(0, 2, n)
    images = rng.uniform(0, 0.2, (n, 4, 4))
    images[y == 0, :2] += 0.8
    images[y == 1, 2:] += 0.8
    np.savez(tmp_path / "d.npz", images=images, y=y)
    out = tmp_path / "run"
    args = ["reservoir", "--out", str(out), "--set", "task.kind=file", "--set", f"task.path={tmp_path / 'd.npz'}",
            "--set", "encoder.size=4", "--set", "encoder.window=4", "--set", "encoder.hold=2",
            "--set", "encoder.steps=64", "--set", "encoder.scale=0.5", "--set", "features.n_times=5",
            *TINY]  # fmt: skip
    assert main(args) == 0
    s = json.loads((out / "summary.json").read_text())
    p = np.load(out / "predictions.npz")
    test = p["test"]
    assert s["metrics"]["test_accuracy"] == pytest.approx(np.mean(p["predictions"][test] == y[test]))
    assert s["metrics"]["train_accuracy"] == pytest.approx(np.mean(p["predictions"][~test] == y[~test]))
    assert p["confusion"].sum() == test.sum() == s["n_test"]
    assert s["n_features"] == 5 * s["n_neurons"] and s["members_not_ok"] == 0
    assert {"compile_s", "simulate_s", "readout_s", "total_s"} <= set(s["timings"]) and s["versions"]["jax"]
    assert (out / "confusion.png").exists() and (out / "config.yaml").exists()
    # The written config reproduces the run.
    out2 = tmp_path / "again"
    assert main(["reservoir", str(out / "config.yaml"), "--out", str(out2)]) == 0
    assert json.loads((out2 / "summary.json").read_text())["metrics"] == s["metrics"]


def test_tiny_narma_regression_end_to_end(tmp_path):
    out = tmp_path / "narma"
    args = ["reservoir", "--out", str(out), "--set", "task.kind=narma10", "--set", "task.length=300",
            "--set", "task.washout=50", "--set", "encoder.hold=4", "--set", "dtype=float64", *TINY]  # fmt: skip
    assert main(args) == 0
    s = json.loads((out / "summary.json").read_text())
    p = np.load(out / "predictions.npz")
    y, P = p["y"][0], p["predictions"][0, :, 0]
    test = slice(50 + round(0.8 * 250), 300)
    want = np.sqrt(np.sum((y[test] - P[test]) ** 2) / np.sum((y[test] - y[test].mean()) ** 2))
    assert s["metrics"]["test_nrmse"] == pytest.approx(want, rel=1e-9)
    assert (out / "predictions.png").exists()
