"""Turn a saved benchmark run into the Markdown table and the plot (and the README's table).

Usage, from the repository root::

    python benchmarks/suite/report.py benchmarks/results/2026-11-25.json
    python benchmarks/suite/report.py benchmarks/results/2026-11-25.json --readme README.md
    python benchmarks/suite/report.py run1.json run2.json     # best of several runs

Reads a file written by ``pytest benchmarks --benchmark-only --benchmark-json=FILE``
and writes ``benchmarks/results/table.md`` and ``benchmarks/results/speed.png``
(``--out-dir`` to change).  With ``--readme FILE`` it also records which runs
and statistic the README shows (``benchmarks/results/speed_table.json``) and
puts the table, with a link to the plot, into FILE's ``bench-table`` table
(``benchmarks/tables.py``, which rebuilds it from that record and the runs);
when FILE lacks the markers it changes nothing and exits with status 1.

The gated models (``test_bench_gated.py``) get rows of their own in the table,
labelled with the model and its layers ("train lstm L=2"); in the plot they
are single points in the train panels (diamonds: LSTM, crosses: GRU; filled
for one layer, hollow for more), beside the vanilla RNN's lines.

Times are microseconds per character: a benchmark's per-call statistic
(``--stat``: min by default, the round least disturbed by the rest of the
machine; noise only ever adds time) divided by its ``extra_info["chars_per_call"]``.
The speed-ups are the other implementation's time over fastrnn's.  Given
several files (runs of the same suite on the same machine), each entry is the
fastest over the runs, which discounts a run that a busy machine disturbed.
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # common, tables
import tables  # noqa: E402
from common import RESULTS, ROOT  # noqa: E402

OPS = ("train", "forward", "backward", "predict")
IMPLS = ("fastrnn", "reference", "torch")
STYLE = {  # colour, marker
    "fastrnn": ("tab:red", "o"),
    "reference": ("tab:blue", "s"),
    "torch": ("tab:green", "^"),
}


class ReportError(Exception):
    """A problem with the input or the README, reported as one line."""


def load(path, stat):
    """Read a pytest-benchmark JSON file.

    Returns
    -------
    run : dict
        The whole file.
    times : dict[(op, B, H), dict[impl, float]]
        Microseconds per character.
    """
    try:
        with open(path) as fh:
            run = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    times = {}
    for bench in run.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if not {"op", "impl", "B", "H", "chars_per_call"} <= info.keys():
            continue  # not one of ours
        seconds = bench["stats"][stat]
        op = info["op"]
        if info.get("model", "rnn") != "rnn":  # test_bench_gated.py: rows of their own
            op = f"{op} {info['model']} L={info.get('layers', 1)}"
        key = (op, int(info["B"]), int(info["H"]))
        times.setdefault(key, {})[info["impl"]] = seconds * 1e6 / info["chars_per_call"]
    if not times:
        raise ReportError(f"{path} holds no fastrnn benchmark results")
    return run, times


def _sort_key(key):
    op, B, H = key
    return (OPS.index(op) if op in OPS else len(OPS), op, B, H)


def load_all(paths, stat):
    """:func:`load` each file; the first run describes the machine, times are the best."""
    runs = [load(path, stat) for path in paths]
    times = {}
    for _, run_times in runs:
        for key, per_impl in run_times.items():
            best = times.setdefault(key, {})
            for impl, value in per_impl.items():
                best[impl] = min(value, best.get(impl, value))
    return runs[0][0], times


def describe(run, stat, source):
    """The lines above the table: machine, threads, statistic, provenance."""
    machine = run.get("machine_info", {})
    cpu = machine.get("cpu", {})
    bench_info = machine.get("fastrnn_bench", {})
    versions = bench_info.get("versions", {})
    commit = run.get("commit_info", {})
    cpu_name = cpu.get("brand_raw") or machine.get("processor") or "unknown CPU"
    cores = cpu.get("count")
    blas = bench_info.get("blas_threads")
    check = bench_info.get("thread_check", {}).get("method", "not recorded")
    torch_threads = bench_info.get("torch_threads")
    version_text = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    commit_id = (commit.get("id") or "")[:10]
    dirty = " (uncommitted changes)" if commit.get("dirty") else ""
    isa = bench_info.get("vector_isa")
    lines = [
        f"- Machine: **{cpu_name}**"
        + (f" ({bench_info.get('llvm_cpu')}, vector ISA **{isa}**)" if isa else "")
        + (f", {cores} logical CPUs" if cores else "")
        + f", {machine.get('system', '')} {machine.get('machine', '')},"
        f" Python {machine.get('python_version', '?')}.",
        f"- Threads: **{blas if blas is not None else 'unknown'}** BLAS thread"
        f" (checked via {check}), torch {torch_threads if torch_threads is not None else 'n/a'}"
        " intra-op thread(s).",
        f"- Time per character: the {stat} of each benchmark's rounds divided by the characters"
        " per call (train/forward/backward: B x T with T=25, V=65; predict: 200 sampled"
        " characters, B=1). Speed-up = other implementation's time / fastrnn's.",
        f"- Source: {source}, run {run.get('datetime', '?')[:19]}"
        + (f", commit {commit_id}{dirty}" if commit_id else "")
        + (f"; {version_text}" if version_text else "")
        + (" (quick mode)" if bench_info.get("quick") else "")
        + ".",
    ]
    return lines


def _us(value):
    if value is None:
        return "–"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _ratio(other, fast):
    if other is None or fast is None:
        return "–"
    return f"{other / fast:.1f}×"


def table(times):
    """The Markdown table: one row per (op, B, H)."""
    rows = [
        "| op | B | H | fastrnn µs/char | reference µs/char | torch µs/char"
        " | speed-up vs reference | speed-up vs torch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in sorted(times, key=_sort_key):
        op, B, H = key
        t = times[key]
        fast = t.get("fastrnn")
        rows.append(
            f"| {op} | {B} | {H} | {_us(fast)} | {_us(t.get('reference'))} | {_us(t.get('torch'))}"
            f" | {_ratio(t.get('reference'), fast)} | {_ratio(t.get('torch'), fast)} |"
        )
    return rows


GATED_MARKERS = {"lstm": "D", "gru": "P"}  # not among STYLE's markers
GATED_NUDGE = {"lstm": 0.88, "gru": 1.13}  # x factors: apart from each other and the RNN's points


def _gated_points(times):
    """The gated rows as ``{(op, B): [(model, layers, H, {impl: us}), ...]}``."""
    points = {}
    for (op, B, H), per_impl in times.items():
        parts = op.split()
        if len(parts) == 3 and parts[1] in GATED_MARKERS and parts[2].startswith("L="):
            points.setdefault((parts[0], B), []).append((parts[1], int(parts[2][2:]), H, per_impl))
    return points


def plot(times, header, path):
    """One panel per (op, B): µs per char against H, log-log, a line per implementation.

    The vanilla RNN's rows (op in OPS) give the lines; the gated models' rows
    ("train lstm L=1") are drawn as single points in their op's panels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    gated = _gated_points(times)
    times = {key: t for key, t in times.items() if key[0] in OPS}
    ticks = sorted({k[2] for k in times})  # the RNN's sizes (128 would collide with 100)

    panels = sorted({(op, B) for op, B, _ in times}, key=lambda p: _sort_key((*p, 0)))
    batches = sorted({B for _, B in panels})
    ops = [op for op in OPS if any(p[0] == op for p in panels)]
    fig, axes = plt.subplots(len(batches), len(ops), figsize=(3.6 * len(ops), 3.2 * len(batches)),
                             squeeze=False, sharex=True)
    spare = []  # empty panels (no predict for B>1): the legend goes there
    for r, B in enumerate(batches):
        for c, op in enumerate(ops):
            ax = axes[r][c]
            keys = sorted(k for k in times if k[0] == op and k[1] == B)
            if not keys:
                ax.set_axis_off()
                spare.append(ax)
                continue
            for impl in IMPLS:
                pts = [(k[2], times[k][impl]) for k in keys if impl in times[k]]
                if pts:
                    colour, marker = STYLE[impl]
                    ax.plot(*zip(*pts, strict=True), color=colour, marker=marker, label=impl)
            for model, layers, H, per_impl in gated.get((op, B), []):
                for impl in IMPLS:
                    if impl not in per_impl:
                        continue
                    colour, us = STYLE[impl][0], per_impl[impl]
                    ax.plot([H * GATED_NUDGE[model]], [us], linestyle="none", markersize=7,
                            marker=GATED_MARKERS[model], color=colour,
                            markerfacecolor=colour if layers == 1 else "none")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(ticks, [str(h) for h in ticks])
            ax.minorticks_off()
            ax.set_title(f"{op}, B={B}")
            ax.grid(True, which="both", alpha=0.3)
            if c == 0:
                ax.set_ylabel("µs per character")
            if r == len(batches) - 1 or (op, batches[-1]) not in panels:
                ax.set_xlabel("hidden size H")
                ax.xaxis.set_tick_params(labelbottom=True)
    handles, labels = max((ax.get_legend_handles_labels() for ax in axes.flat),
                          key=lambda pair: len(pair[0]))
    for model in sorted({p[0] for pts in gated.values() for p in pts}):
        sizes = sorted({p[2] for pts in gated.values() for p in pts if p[0] == model})
        handles.append(Line2D([], [], color="black", linestyle="none", markersize=7,
                              marker=GATED_MARKERS[model]))
        labels.append(f"{model.upper()} (H={' or '.join(map(str, sizes))};"
                      " filled: 1 layer, hollow: more)")
    if spare:
        spare[0].legend(handles, labels, loc="center", frameon=False, fontsize=11)
    else:
        fig.legend(handles, labels, loc="lower right", ncol=len(labels), frameon=False)
    fig.suptitle(header, fontsize=9)
    fig.tight_layout(rect=(0, 0 if spare else 0.04, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def selection(paths, stat, plot_path):
    """What the README's table shows: the runs (from the repository root), stat, plot."""
    def from_root(path):
        return Path(os.path.relpath(Path(path).resolve(), ROOT)).as_posix()

    return {"runs": [from_root(path) for path in paths], "stat": stat,
            "plot": None if plot_path is None else from_root(plot_path)}


def _source(runs):
    source = ", ".join(f"`{path}`" for path in runs)
    return f"best of {len(runs)} runs: {source}" if len(runs) > 1 else source


def readme_table(chosen, readme):
    """The README's table from a :func:`selection` (``speed_table.json``) and the runs it names.

    ``readme`` is the path of the file the table goes into, for the plot's link.
    """
    run, times = load_all([ROOT / path for path in chosen["runs"]], chosen["stat"])
    block = [*describe(run, chosen["stat"], _source(chosen["runs"])), "", *table(times)]
    if chosen["plot"] is not None:
        plot_link = tables.link(ROOT / chosen["plot"], readme)
        block += ["", f"![µs per character against hidden size]({plot_link})"]
    return "\n".join(block)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", type=Path, nargs="+",
                        help="--benchmark-json file(s) of the suite; several: best of each")
    parser.add_argument("--out-dir", type=Path, default=RESULTS,
                        help="where table.md and speed.png go (default: benchmarks/results)")
    parser.add_argument("--stat", choices=("min", "median", "mean"), default="min",
                        help="statistic of the rounds to report (default: min)")
    parser.add_argument("--readme", type=Path,
                        help="also put the table into this file's bench-table table")
    parser.add_argument("--no-plot", action="store_true", help="skip speed.png")
    args = parser.parse_args(argv)
    try:
        if args.readme is not None:  # check the markers before writing anything
            try:
                tables.check(args.readme, "bench-table")
            except (OSError, tables.MarkerError) as exc:
                raise ReportError(f"{args.readme}: {exc}") from None
        run, times = load_all(args.json, args.stat)
        header = describe(run, args.stat, _source(selection(args.json, args.stat, None)["runs"]))
        rows = table(times)
        args.out_dir.mkdir(parents=True, exist_ok=True)
        table_path = args.out_dir / "table.md"
        png_path = args.out_dir / "speed.png"
        note = "<!-- generated by benchmarks/suite/report.py; do not edit by hand -->"
        table_path.write_text("\n".join([note, *header, "", *rows]) + "\n")
        print(f"wrote {table_path}")
        if not args.no_plot:
            machine = header[0].replace("- Machine: ", "").replace("**", "")
            plot(times,
                 f"fastrnn vs reference vs torch, {args.stat} µs per character\n{machine}"
                 f" {header[1][2:].replace('**', '')}", png_path)
            print(f"wrote {png_path}")
        if args.readme is not None:
            chosen = selection(args.json, args.stat, None if args.no_plot else png_path)
            (RESULTS / "speed_table.json").write_text(json.dumps(chosen, indent=1) + "\n")
            tables.write(args.readme, "bench-table", readme_table(chosen, args.readme))
            print(f"updated the table in {args.readme}")
    except ReportError as exc:
        print(f"report.py: error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
