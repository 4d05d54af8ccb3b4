"""The Dask side of a sweep (:mod:`fastrnn.sweeps.cluster`): connecting, and collecting outcomes.

A scheduler given by an address that nothing answers is one line of error,
told within the connect timeout (shortened here; no cluster starts on that
path, so the command runs in this process).  A local cluster holds no fixed
port and listens on this machine only.  How outcomes are collected (a trial
whose worker died, the stop event on Ctrl-C) is tested with stand-in futures;
a real Ctrl-C on a real cluster is in test_trial.py.
"""

import socket
import types

import pytest

pytest.importorskip("distributed")

from helpers import SWEEP_GRID, assert_one_line_error, run_cli_here, stderr_of  # noqa: E402

import fastrnn.sweeps.cluster  # noqa: E402
from fastrnn.sweeps.cluster import _collect, connect  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_scheduler_where_nothing_listens_fails_in_one_line(tmp_path, text_file, monkeypatch,
                                                             capfd):
    # The production wait is CONNECT_TIMEOUT (5 s); the message is the same after 0.5 s.
    monkeypatch.setattr(fastrnn.sweeps.cluster, "CONNECT_TIMEOUT", 0.5)
    address = f"tcp://127.0.0.1:{free_port()}"
    result = run_cli_here("sweep", text_file, "--out", tmp_path / "out", *SWEEP_GRID,
                          "--iterations", "5", "--scheduler", address, cwd=tmp_path)
    assert_one_line_error(result, 1, f"cannot reach a Dask scheduler at {address}")
    assert sum("error" in line for line in stderr_of(result).splitlines()) == 1
    # nor does Dask's own logging add an error line of its own
    assert not [line for line in capfd.readouterr().err.splitlines() if "error" in line.lower()]
    assert not (tmp_path / "out").exists()


def test_the_local_cluster_holds_no_fixed_port_and_listens_on_this_machine_only():
    import distributed


    client, cluster, _ = connect(distributed, 1, None, 1)
    try:
        # Dask's HTTP routes (it calls them "dashboard") on a port of its own, this machine only
        port = client.scheduler_info()["services"]["dashboard"]
        assert port != 8787
        assert cluster.dashboard_link.startswith(f"http://127.0.0.1:{port}/")
    finally:
        client.close()
        cluster.close()


class _Future:
    """A stand-in for a Dask future: done at once, with a status and a result or an error."""

    def __init__(self, status, result=None, error=None):
        self.status, self._result, self._error = status, result, error

    def done(self):
        return True

    def result(self):
        return self._result

    def exception(self):
        return self._error


class _Event:
    def __init__(self):
        self.set_calls = 0

    def set(self):
        self.set_calls += 1


def _task(tmp_path, name):
    return {"name": name, "path": str(tmp_path / name), "grid": {"hidden_size": 8}}


def test_a_trial_that_never_reported_is_failed_and_the_others_collected(tmp_path):
    from fastrnn.sweeps.trial import outcome

    reported = outcome(_task(tmp_path, "trial-001"), "finished", iterations=5, seconds=1.0,
                       best_val_loss=2.0)
    futures = {_Future("finished", reported): _task(tmp_path, "trial-001"),
               _Future("error", error=MemoryError()): _task(tmp_path, "trial-002"),
               _Future("cancelled"): _task(tmp_path, "trial-003")}
    said = []
    stop = types.SimpleNamespace(raised=False)
    event = _Event()
    results = {r.name: r for r in _collect(futures, stop, event, said.append)}
    assert results["trial-001"] == reported
    assert results["trial-002"].status == "failed" and results["trial-002"].message == (
        "not enough memory for this trial; rerun the sweep to resume it")
    assert results["trial-003"].status == "failed" and results["trial-003"].message == (
        "the cluster lost it (cancelled); rerun the sweep to resume it")
    assert len(said) == 3 and said[0].startswith("trial-001 finished: 5 iterations")
    assert event.set_calls == 0  # no stop asked


def test_a_stop_sets_the_event_once(tmp_path):
    from fastrnn.sweeps.trial import outcome

    futures = {_Future("finished", outcome(_task(tmp_path, f"trial-00{i}"), "interrupted")):
               _task(tmp_path, f"trial-00{i}") for i in (1, 2)}
    event = _Event()
    _collect(futures, types.SimpleNamespace(raised=True), event, lambda line: None)
    assert event.set_calls == 1

