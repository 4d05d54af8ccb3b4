"""A 2-layer LSTM against a vanilla RNN of about the same size, on the built-in corpus.

Usage, from the repository root::

    python benchmarks/studies/lstm_vs_rnn.py                      # ~1-2 minutes on 2 cores
    python benchmarks/studies/lstm_vs_rnn.py --iterations 500     # a quick look

Both models train with the same options (:class:`fastrnn.TrainingConfig`:
Adam at 2e-3, 32 streams of 25 characters, clip 5, the same seed and the same
number of iterations) through :class:`fastrnn.Trainer`, each into its own
directory under ``--work``; the validation losses (nats per character, the
held-out last 5% of the corpus) are drawn as one plot,
``benchmarks/results/lstm_vs_rnn.png``, and written with the parameter counts
to ``benchmarks/results/lstm_vs_rnn.json``.
"""

import argparse
import csv
import json
import os
import sys
import tempfile
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCHMARKS.parent))  # the fastrnn of this checkout

from fastrnn import Trainer, TrainingConfig  # noqa: E402
from fastrnn.corpus import builtin_corpus  # noqa: E402

MODELS = {  # name: (options, label)
    "rnn": (dict(model="rnn", hidden_size=200), "vanilla RNN, H=200"),
    "lstm": (dict(model="lstm", hidden_size=64, num_layers=2), "LSTM, 2 layers of H=64"),
}


def _history(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [(int(r["iteration"]), float(r["val_loss"])) for r in csv.DictReader(f)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--work", default=None, help="directory for the two runs (default: temp)")
    parser.add_argument("--out-dir", default=str(BENCHMARKS / "results"))
    args = parser.parse_args(argv)
    text = builtin_corpus()
    work = args.work or tempfile.mkdtemp(prefix="lstm_vs_rnn_")
    results = {}
    for name, (options, label) in MODELS.items():
        config = TrainingConfig(**options, optimizer="adam", learning_rate=2e-3, batch_size=32,
                                seq_length=25, iterations=args.iterations,
                                eval_every=args.eval_every, sample_every=args.iterations,
                                sample_length=0, seed=0)
        trainer = Trainer(text, config, source="<builtin>")
        out = os.path.join(work, name)
        summary = trainer.run(out, progress=False, handle_sigint=False)
        results[name] = {
            "label": label,
            "parameters": int(trainer.model.parameter_vector.shape[0]),
            "history": _history(os.path.join(out, "history.csv")),
            "final_val_loss": summary.val_loss,
            "seconds": summary.seconds,
            "config": config.to_dict(),
        }
        print(f"{label}: {results[name]['parameters']:,} parameters, validation loss "
              f"{summary.val_loss:.4f} nats/char after {args.iterations} iterations "
              f"({summary.seconds:.0f} s)")
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "lstm_vs_rnn.json"), "w") as f:
        json.dump(results, f, indent=1)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for r in results.values():
        its, val = zip(*r["history"], strict=True)
        ax.plot(its, val, marker="o", label=f"{r['label']} ({r['parameters']:,} parameters)")
    ax.set_xlabel("iteration (32 streams x 25 characters, Adam 2e-3)")
    ax.set_ylabel("validation loss (nats per character)")
    ax.set_title("fastrnn on the built-in corpus: LSTM vs vanilla RNN")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out_dir, "lstm_vs_rnn.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
