"""What the commands print when their output is captured (a log file, a pipe, CI): progress as lines, not as a
redrawn bar, and the search's progress showing the best trial so far."""
import os, re, subprocess, sys
from pathlib import Path

CLI = str(Path(sys.executable).parent / "nasrec-lit")
ENV = dict(os.environ, WANDB_MODE="disabled", NASREC_LIT_PROGRESS="1", NASREC_LIT_PROGRESS_SECONDS="0")


def _captured(args, tmp_path):
    "Run the CLI with stdout and stderr into one file, as `make demo > demo.log 2>&1` does; the file's text."
    log = tmp_path / "out.log"
    with open(log, "w") as f: r = subprocess.run([CLI, *args], env=ENV, stdout=f, stderr=subprocess.STDOUT)
    text = log.read_text()
    assert r.returncode == 0, text[-3000:]
    return text


def test_search_in_a_log_file_prints_lines_with_the_best_so_far(tmp_path):
    """A search written to a log: no carriage returns or cursor moves; the search's lines show the best validation log
    loss so far with its trial, never above an earlier one (the bar used to show the last trial's value); the supernet's
    training and the retraining print their epochs as lines."""
    text = _captured(["search", "--data", "synthetic", "--budget", "6", "--blocks", "2", "--supernet-epochs", "1", "--top-k", "1",
                      "--final-epochs", "2", "--no-baselines", "--runs-dir", str(tmp_path), "--name", "s"], tmp_path)
    assert "\r" not in text and "\x1b[A" not in text
    best = [float(m) for m in re.findall(r"best val_logloss=([\d.]+) \(trial \d+\)", text)]
    assert len(best) >= 5 and all(b <= a for a, b in zip(best, best[1:])), best
    assert re.search(r"search: 100%.*6/6", text), text[-2000:]
    assert re.search(r"^training: epoch 1/1, step \d+", text, re.M) and re.search(r"^trained: 1 epochs done, step \d+, train_loss=", text, re.M), text[-3000:]


def test_training_and_mdp_check_in_a_log_file(tmp_path):
    "`train` and `mdp-check` into a log: lines per stage and epoch, never a redrawn bar."
    text = _captured(["train", "--model", "lr", "--data", "synthetic", "--epochs", "2", "--runs-dir", str(tmp_path)], tmp_path)
    assert "\r" not in text and re.search(r"^validated: epoch 2/2, step \d+", text, re.M), text[-3000:]
    text = _captured(["mdp-check", "nasrec_lit/LineWorld-v0", "--steps", "2000", "--runs-dir", str(tmp_path)], tmp_path)
    assert "\r" not in text and re.search(r"^collect: 100%.*2000/2000", text, re.M), text[-3000:]
    fig = tmp_path / "mdp-check-nasrec_lit-LineWorld-v0" / "figures" / "report.png"     # the figure by default, not only with --figure
    assert fig.stat().st_size > 5000 and f"figure: {fig}" in text.replace("\n", ""), text[-2000:]
