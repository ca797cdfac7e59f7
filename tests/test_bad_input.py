"""Every mistake a user can make, typed into the real CLI: one sentence, a non-zero exit, no traceback,
and the run already in --logdir (or the run given to --resume) left exactly as it was."""

import fcntl
import io
import os
import pathlib
import resource
import shutil
import subprocess
import sys

import pytest

from graph_nn.core.config import make_config
from graph_nn.data.dataset import FILES, SHIPPED_DIR
from graph_nn.training.runs import train
from tests.conftest import IMPORTED_AFTER, ROOT

FILE_SIZE_LIMIT = 300_000  # bytes: room for config.json and events, not for an mlp64 checkpoint


@pytest.fixture(scope="module")
def paths(mnist, tmp_path_factory):
    """{name: path} for the placeholders in CASES; "run" is a finished mlp64 run inside "logdir"."""
    root = tmp_path_factory.mktemp("bad_input")
    logdir = root / "logs"
    config = make_config(model="mlp64", steps=20, eval_every=10, log_every=5, histogram_every=10)
    run = pathlib.Path(train(config, mnist, logdir=logdir, out=io.StringIO(), report=False).run_dir)
    bare_run = root / "bare-run"
    bare_run.mkdir()
    shutil.copy(run / "config.json", bare_run)
    broken_config = root / "broken-config-run"
    broken_config.mkdir()
    (broken_config / "config.json").write_text('{"model": "mlp64", ')
    empty = root / "empty"
    empty.mkdir()
    corrupt = root / "corrupt"
    corrupt.mkdir()
    for stem in FILES.values():
        shutil.copy(SHIPPED_DIR / (stem + ".gz"), corrupt)
    (corrupt / (FILES["test_labels"] + ".gz")).unlink()
    (corrupt / FILES["test_labels"]).write_bytes(b"\x00\x00\x08\x01" + (10000).to_bytes(4, "big") + bytes(9999))
    copy = root / "mnist-copy"
    shutil.copytree(SHIPPED_DIR, copy)
    bad_sums = root / "bad-sums"
    shutil.copytree(SHIPPED_DIR, bad_sums)
    (bad_sums / "SHA256SUMS").write_text("not-a-checksum-line\n")
    empty_test = root / "empty-test"
    shutil.copytree(SHIPPED_DIR, empty_test)
    (empty_test / "SHA256SUMS").unlink()
    for stem, header in (
        (FILES["test_images"], b"\x00\x00\x08\x03" + bytes(4) + (28).to_bytes(4, "big") * 2),
        (FILES["test_labels"], b"\x00\x00\x08\x01" + bytes(4)),
    ):
        (empty_test / (stem + ".gz")).unlink()
        (empty_test / stem).write_bytes(header)
    empty_file = root / "empty-file"
    shutil.copytree(SHIPPED_DIR, empty_file)
    (empty_file / "SHA256SUMS").unlink()
    (empty_file / (FILES["train_labels"] + ".gz")).write_bytes(b"")
    a_file = root / "a-file"
    a_file.write_text("not a directory\n")
    bad_classes = root / "bad-classes"  # read before the IDX files, which it does not need
    bad_classes.mkdir()
    (bad_classes / "classes.txt").write_text("cat\ndog\nbird\n")
    return dict(
        logdir=logdir,
        run=run,
        bare_run=bare_run,
        broken_config=broken_config,
        empty=empty,
        corrupt=corrupt,
        copy=copy,
        shipped=SHIPPED_DIR.resolve(),
        file=a_file,
        bad_sums=bad_sums,
        empty_test=empty_test,
        empty_file=empty_file,
        bad_classes=bad_classes,
        nothing=root / "nothing-here",
    )


CASES = [  # (id, arguments, what the one sentence says, how the child is run: "flag" for a flag
    # mistake, answered before TensorFlow is imported)
    (
        "unknown model",
        ["--model", "resnet"],
        "unknown model 'resnet'; choose one of mlp64, mlp512, mlp5, cnn, mlp500, deep.",
        "flag",
    ),
    ("unknown optimizer", ["--optimizer", "lion"], "unknown optimizer 'lion'; choose one of", "flag"),
    ("unknown preset", ["--preset", "imagenet"], "unknown preset 'imagenet'; choose one of tf1,", "flag"),
    ("unknown init", ["--init", "zeros"], "unknown init 'zeros'", "flag"),
    ("zero batch size", ["--batch-size", "0"], "--batch-size must be positive, got 0.", "flag"),
    ("negative steps", ["--steps", "-5"], "--steps must be positive, got -5.", "flag"),
    ("zero epochs", ["--epochs", "0"], "--epochs must be positive, got 0.", "flag"),
    ("zero learning rate", ["--lr", "0"], "--learning-rate must be positive, got 0.0.", "flag"),
    ("NaN learning rate", ["--lr", "nan"], "--learning-rate must be positive, got nan.", "flag"),
    ("zero checkpoint interval", ["--checkpoint-every", "0"], "--checkpoint-every must be positive, got 0.", "flag"),
    ("batch size not a number", ["--batch-size", "abc"], "argument --batch-size: invalid int value: 'abc'.", "flag"),
    ("unknown flag", ["--colour", "red"], "unrecognized arguments: --colour red.", "flag"),
    ("negative seed", ["--seed", "-1"], "--seed must be zero or positive, got -1.", "flag"),
    ("rho out of range", ["--rho", "1.5"], "--rho must be in [0, 1), got 1.5.", "flag"),
    ("zero eval interval", ["--eval-every", "0"], "--eval-every must be positive, got 0.", "flag"),
    ("negative print interval", ["--print-every", "-1"], "--print-every must be positive, got -1.", "flag"),
    ("zero log interval", ["--log-every", "0"], "--log-every must be positive, got 0.", "flag"),
    ("zero histogram interval", ["--histogram-every", "0"], "--histogram-every must be positive, got 0.", "flag"),
    ("interval not a number", ["--eval-every", "ten"], "argument --eval-every: invalid int value: 'ten'.", "flag"),
    (
        "learning rate not a number",
        ["--lr", "fast"],
        "argument --lr/--learning-rate: invalid float value: 'fast'.",
        "flag",
    ),
    (
        "momentum out of range",
        ["--optimizer", "momentum", "--momentum", "1"],
        "--momentum must be in [0, 1), got 1.0.",
        "flag",
    ),
    ("beta1 out of range", ["--optimizer", "adam", "--beta1", "1"], "--beta1 must be in [0, 1), got 1.0.", "flag"),
    ("beta2 out of range", ["--optimizer", "adam", "--beta2", "-0.1"], "--beta2 must be in [0, 1), got -0.1.", "flag"),
    ("decay rate not a number", ["--rho", "high"], "argument --rho: invalid float value: 'high'.", "flag"),
    ("zero epsilon", ["--epsilon", "0"], "--epsilon must be positive, got 0.0.", "flag"),
    (
        "trace steps not numbers",
        ["--trace-steps", "100,x"],
        "argument --trace-steps: expected step numbers separated by commas, got '100,x'.",
        "flag",
    ),
    (
        "trace step zero",
        ["--trace-steps", "0,100"],
        "--trace-steps must be positive step numbers, got [0, 100].",
        "flag",
    ),
    ("malformed SHA256SUMS", ["--data-dir", "{bad_sums}"], "{bad_sums}/SHA256SUMS: line 1 is not 'DIGEST NAME'.", None),
    ("empty test set", ["--data-dir", "{empty_test}"], "t10k-images-idx3-ubyte: holds no images.", None),
    ("sequential batches without steps", ["--batching", "sequential"], "sequential batching", "flag"),
    (
        "negative validation split",
        ["--validation-split", "-1"],
        "--validation-split must be zero or positive, got -1.",
        "flag",
    ),
    (
        "validation split as large as the training set",
        ["--model", "mlp64", "--validation-split", "60000"],
        "--validation-split 60000 leaves no training examples: the training set has 60,000.",
        "flag",
    ),
    ("zero early-stopping patience", ["--early-stop", "0"], "--early-stop must be positive, got 0.", "flag"),
    (
        "malformed classes.txt",
        ["--data-dir", "{bad_classes}"],
        "{bad_classes}/classes.txt: expected 10 class names, one per line in label order, found 3 lines.",
        None,
    ),
    (
        "empty sweep list",
        ["sweep", "--lr", ","],
        "argument --lr/--learning-rate: expected comma-separated values, got ','.",
        "flag",
    ),
    (
        "sweep value given twice",
        ["sweep", "--batch-size", "64,64"],
        "argument --batch-size: '64,64' names a value twice.",
        "flag",
    ),
    (
        "bad value in a sweep list",
        ["sweep", "--model", "mlp64,resnet"],
        "unknown model 'resnet'; choose one of mlp64, mlp512, mlp5, cnn, mlp500, deep.",
        "flag",
    ),
    (
        "resume a sweep that is none",
        ["sweep", "--resume", "{empty}"],
        "{empty}: not a sweep directory (no sweep.json).",
        None,
    ),
    (
        "resume a sweep with other values",
        ["sweep", "--resume", "{empty}", "--lr", "0.1"],
        "--resume continues the sweep planned in its sweep.json; give only --jobs and --timeout with it, not "
        "--learning-rate.",
        "flag",
    ),
    (
        "batch larger than the data",
        ["--model", "mlp64", "--batch-size", "60001"],
        "--batch-size 60001 is larger than the 60000 training examples.",
        "flag",
    ),
    ("data dir missing", ["--data-dir", "{nothing}"], "{nothing}: data directory not found.", None),
    ("data files missing", ["--data-dir", "{empty}"], "train-images-idx3-ubyte.gz: file not found", None),
    (
        "empty data file",
        ["--data-dir", "{empty_file}"],
        "{empty_file}/train-labels-idx1-ubyte.gz: too short to be an IDX file (0 bytes).",
        None,
    ),
    (
        "corrupt IDX file",
        ["--data-dir", "{corrupt}"],
        "t10k-labels-idx1-ubyte: payload is 9999 bytes but the header (10000 uint8) needs 10000.",
        None,
    ),
    (
        "logdir under a file",
        ["--model", "mlp64", "--logdir", "{file}/logs"],
        "{file}/logs: cannot create a run directory there (Not a directory).",
        None,
    ),
    (
        "logdir is a device",
        ["--model", "mlp64", "--logdir", "/dev/full"],
        "--logdir /dev/full is not a directory.",
        None,
    ),
    (
        "disk full at the first checkpoint",
        ["--model", "mlp64", "--steps", "20", "--checkpoint-every", "10"],
        "/checkpoints (File too large); no checkpoint had been saved yet in {logdir}/mlp64-",
        "file-size-limit",
    ),
    ("resume nothing", ["--resume", "{nothing}"], "--resume {nothing}: no such run directory.", None),
    (
        "resume a directory that is no run",
        ["--resume", "{empty}"],
        "{empty}: not a graph_nn run directory (no config.json).",
        None,
    ),
    ("resume a run with a broken config", ["--resume", "{broken_config}"], "unreadable run configuration", None),
    (
        "resume a run without checkpoint",
        ["--resume", "{bare_run}"],
        "{bare_run}: the run has no checkpoint to restore.",
        None,
    ),
    (
        "resume as another model",
        ["--resume", "{run}", "--model", "cnn"],
        "{run} was trained with --model mlp64, not cnn; --resume continues a run with the configuration in its "
        "config.json.",
        None,
    ),
    (
        "resume with another learning rate",
        ["--resume", "{run}", "--lr", "0.5"],
        "{run} was trained with --learning-rate 0.001, not 0.5;",
        None,
    ),
    (
        "resume with other class names",
        ["--resume", "{run}", "--classes", "{file}"],
        "--resume {run} keeps the class names the run was trained with; give no --classes.",
        None,
    ),
    (
        "resume on other data",
        ["--resume", "{run}", "--data-dir", "{copy}"],
        "{run} was trained on the data in {shipped}, not {copy}; resume it with --data-dir {shipped}.",
        None,
    ),
    (
        "resume a finished run",
        ["--resume", "{run}"],
        "{run} already finished its 20 steps; test it with: python run.py evaluate --run {run}",
        None,
    ),
    (
        "resume a run another process trains",
        ["--resume", "{run}"],
        "{run} is being trained by another process right now.",
        "locked",
    ),
]


def snapshot(directory):
    """{relative path: bytes} of every file under directory."""
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(pathlib.Path(directory).rglob("*")) if p.is_file()
    }


def limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


def run_cli_as(how, args, paths):
    # A flag mistake's run also reports, on a last line, whether it imported TensorFlow or Keras.
    run_py = ["-c", IMPORTED_AFTER] if how == "flag" else [os.path.join(ROOT, "run.py")]
    command = [sys.executable, *run_py, *args]
    if how != "locked":
        return subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=limit_file_size if how == "file-size-limit" else None,
        )
    with open(paths["run"] / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args,message,how", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_answered_in_one_sentence_and_loses_nothing(args, message, how, paths):
    args = [a.format(**paths) for a in args]
    if "--logdir" not in args:
        args += ["--logdir", str(paths["logdir"])]
    before = snapshot(paths["logdir"])
    result = run_cli_as(how, args, paths)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    if how == "flag":
        assert lines.pop() == "exit 2 imported nothing heavy", result.stderr
    assert len(lines) == 1 and lines[0].startswith("graph-nn: error: "), result.stderr
    assert message.format(**paths) in lines[0]
    after = snapshot(paths["logdir"])
    if how == "file-size-limit":
        new_files = set(after) - set(before)
        assert {name: after[name] for name in before} == before
        assert new_files and not any("checkpoints/checkpoint" in name for name in new_files)
        shutil.rmtree(paths["logdir"] / pathlib.Path(sorted(new_files)[0]).parts[0])
    else:
        assert after == before
