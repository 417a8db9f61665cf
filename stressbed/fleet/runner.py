"""One runner: a supervised k6 process on one execution segment, and what it measured.

The runner starts k6 paused with its REST API on ``--api-host`` (loopback locally, the pod IP
in a cluster), waits until k6 has initialised every VU, announces itself, and lets the fleet
release it through k6's REST API. While k6 runs, the runner folds k6's CSV sample stream into
mergeable aggregates (:mod:`stressbed.results.samples`) and reports progress once a second;
when k6 exits it writes a versioned :class:`~stressbed.results.runner_result.RunnerResult`.
Thresholds are not judged here (k6 runs with ``--no-thresholds``): the fleet judges them on
merged data.

It runs as its own process, talking JSON lines on stdout, so the same code runs under the
local fleet and in a Kubernetes pod::

    python -m stressbed.runner --bundle DIR --index 0 --count 4 --out DIR/runners/0
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from ..results.runner_result import RunnerResult, RunnerStatus, status_for
from ..results.samples import SYSTEM_TAGS, Collector, Selector, parse_selector
from ..results.transport import result_lines
from ..scenario.render import agents_per_runner, request_names
from . import _k6api as k6api
from .control import TOKEN_ENV, ControlServer
from .k6run import k6_command, k6_environment, source_addresses
from .oom import oom_kills
from .process import die_with_parent, free_port, nofile_of, raise_nofile
from .segments import segment
from .usage import cpu_capacity, cpu_seconds, quota_group_seconds

__all__ = [
    "Runner",
    "find_k6",
    "k6_command",
    "k6_environment",
    "main",
    "selectors_of",
    "source_addresses",
    "system_tags",
]

STDERR_TAIL = 20


def find_k6() -> str | None:
    """The k6 binary: the one installed beside this Python first (the k6 wheel puts it in the
    same bin/ as the interpreter: a venv, a pipx install, a stressbed run without activating
    its venv), then the one on PATH."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / "k6"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("k6")


def selectors_of(config: dict[str, Any]) -> list[Selector]:
    """The submetrics a bundle's thresholds read, from its config.json."""
    options = config.get("options", {})
    return [parse_selector(key) for key in options.get("thresholds", {})]


#: The tags the collector reads whatever the thresholds: a request's name and status, whether
#: its response was expected (its http_req_failed), a check's name.
BASE_TAGS = ("check", "expected_response", "name", "status")


def system_tags(selectors: Iterable[Selector]) -> list[str]:
    """The system tags k6 attaches in a runner: the collector's own and those the thresholds
    select on. Each costs k6 work on every sample and a CSV column on every line, so no
    more (plain ``k6 run`` attaches 14)."""
    chosen = set(BASE_TAGS) | {k for s in selectors for k, _ in s.tags if k in SYSTEM_TAGS}
    return sorted(chosen)


class Runner:
    """One k6 process, its sample reader and its aggregates."""

    def __init__(
        self,
        script: Path,
        index: int,
        count: int,
        out_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_raw: bool = False,
        k6: str | None = None,
    ) -> None:
        self.script = script
        self.index = index
        self.count = count
        self.out_dir = out_dir
        self.keep_raw = keep_raw
        self.host = host
        self.k6 = k6 or find_k6() or "k6"
        config = json.loads((script.parent / "config.json").read_text(encoding="utf-8"))
        self.selectors = selectors_of(config)
        # Every runner keeps the same request names apart: the bundle's, not the first it meets.
        self.collector = Collector(self.selectors, request_names(config))
        self.population = agents_per_runner(config, count) > 0
        self.lock = threading.Lock()
        # A fixed port in a pod (the coordinator knows it); any free one on a shared machine.
        self.api = f"http://{'[' + host + ']' if ':' in host else host}:{port or free_port(host)}"
        # The FIFO lives beside the results (not in /tmp), removed when the runner finishes;
        # only a SIGKILLed runner can leave it, and then inside its own results directory.
        self.fifo = out_dir / ".samples.fifo"
        self.proc: subprocess.Popen[bytes] | None = None
        self.oom_kills_before = oom_kills()
        self.started_at = 0.0
        self.stopped_by: RunnerStatus | None = None
        self.nofile: int | None = None  # k6's open-file limit, once started (None: not read)
        self.source_addresses: str | None = None  # k6's --local-ips, if it has some
        self._stopping = threading.Lock()
        self.cpu: dict[int, float] = {}  # unix second -> k6's cores used in the second before
        self._cpu_last: tuple[float, float] | None = None
        self._reader = threading.Thread(target=self._read, name="samples", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.fifo.unlink(missing_ok=True)
        os.mkfifo(self.fifo)
        self._reader.start()
        address = self.api.removeprefix("http://")
        command = k6_command(
            self.script,
            self.index,
            self.count,
            api=address,
            samples=self.fifo,
            summary=self.out_dir / "k6-summary.json",
            tags=system_tags(self.selectors),
        )
        command[0] = self.k6
        self._log = (self.out_dir / "k6.log").open("wb")
        environment = k6_environment(
            os.environ, self.count, population=self.population, index=self.index
        )
        self.source_addresses = environment.get("K6_LOCAL_IPS")
        orphan_guard = die_with_parent()

        def before_exec() -> None:
            orphan_guard()
            raise_nofile()  # each VU's connection is a descriptor: the hard limit, not 1024

        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env=environment,
            preexec_fn=before_exec,  # noqa: PLW1509 - prctl and an rlimit, no locks taken
        )
        self.nofile = nofile_of(self.proc.pid)  # what k6 has, read once it has exec'd

    def wait_ready(self, timeout: float) -> bool:
        """True once k6 has every VU initialised (it starts paused: the release is the
        coordinator's); False if it exited or timed out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            status = self.status()
            if status is not None and k6api.initialised(status):
                return True
            time.sleep(0.05)
        return False

    def status(self) -> dict[str, Any] | None:
        try:
            return k6api.status(self.api)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def stop(self, why: RunnerStatus, grace: float = 10.0) -> None:
        """Stop k6 gracefully (SIGINT: it ends iterations and writes its summary), then kill.
        Only the first stop acts: a second SIGINT would make k6 quit without its summary."""
        with self._stopping:
            if self.proc is None or self.proc.poll() is not None or self.stopped_by is not None:
                return
            self.stopped_by = why
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def finish(self) -> RunnerResult:
        """Wait for k6 to end and for every sample to be read; the result document."""
        assert self.proc is not None
        exit_code = self.proc.wait()
        self._log.close()
        self._unblock_reader()
        self._reader.join(timeout=30)
        ended = time.time()
        summary_path = self.out_dir / "k6-summary.json"
        summary = None
        if summary_path.exists():
            with contextlib.suppress(ValueError):
                summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if isinstance(summary, dict):
            with self.lock:
                self.collector.take_summary(summary)
        status = self.stopped_by or status_for(exit_code)
        # A SIGKILL this runner sent (a stop past its grace) is not the OOM killer's, whatever
        # else in the cgroup ran out of memory meanwhile.
        if exit_code == -signal.SIGKILL and self.stopped_by is None and self._oom_killed():
            status = RunnerStatus.OOM_KILLED
        tail = _tail(self.out_dir / "k6.log", STDERR_TAIL)
        with self.lock:
            result = RunnerResult(
                index=self.index,
                count=self.count,
                segment=segment(self.index, self.count),
                status=status,
                exit_code=exit_code,
                reason=_reason(status, exit_code, tail),
                started_at=self.started_at or ended,
                ended_at=ended,
                aggregates=self.collector.aggregates,
                windows=self.collector.windows,
                writes=self.collector.writes,
                names_folded=sorted(self.collector.folded),
                names_folded_more=self.collector.folded_more,
                k6_summary=summary,
                stderr_tail=tail,
                samples=self.collector.samples,
                dropped_lines=self.collector.bad_lines,
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                cpu=dict(self.cpu),
                cpu_capacity=cpu_capacity(),  # k6 runs in this process's cgroup, on its CPUs
                nofile=self.nofile,
                source_addresses=self.source_addresses,
            )
        result.write(self.out_dir / "result.json")
        self.fifo.unlink(missing_ok=True)
        return result

    def sample_cpu(self) -> None:
        """Record k6's CPU use since the last sample (cores), keyed by the current second;
        under a CPU quota, the whole quota's (this runner and its k6)."""
        if self.proc is None:
            return
        used = quota_group_seconds(self.proc.pid)
        if used is None:
            used = cpu_seconds(self.proc.pid)
        now = time.monotonic()
        if used is None:
            return
        if self._cpu_last is not None and now > self._cpu_last[0]:
            cores = (used - self._cpu_last[1]) / (now - self._cpu_last[0])
            with self.lock:
                self.cpu[int(time.time())] = max(0.0, cores)
        self._cpu_last = (now, used)

    def _oom_killed(self) -> bool:
        after = oom_kills()
        return (
            after is not None
            and self.oom_kills_before is not None
            and (after > self.oom_kills_before)
        )

    # -- samples -----------------------------------------------------------------------

    def _read(self) -> None:
        # What k6 has written is taken at once: one read of what the FIFO holds (up to
        # 64 KiB), not a wait until 64 KiB of lines have piled up, which at a few requests a
        # second held the live view's samples back by seconds.
        raw: IO[str] | None = None
        if self.keep_raw:
            raw = gzip.open(self.out_dir / "samples.csv.gz", "wt", encoding="utf-8")  # noqa: SIM115
        try:
            with self.fifo.open("rb", buffering=0) as stream:
                tail = b""
                while True:
                    chunk = stream.read(1 << 16)
                    if not chunk:
                        break
                    data = tail + chunk
                    cut = data.rfind(b"\n") + 1
                    tail = data[cut:]
                    if cut:
                        self._take(data[:cut], raw)
                if tail:  # a line k6 did not finish (it was killed): counted as dropped
                    self._take(tail, raw)
        finally:
            if raw is not None:
                raw.close()

    def _take(self, data: bytes, raw: IO[str] | None) -> None:
        # Split on "\n" only, as k6 ends its lines (a name may hold other line breaks).
        text = data.decode("utf-8", errors="replace")
        if raw is not None:
            raw.write(text)
        lines = text.split("\n")
        if not lines[-1]:
            lines.pop()  # what followed the last "\n": nothing, or a line k6 never finished
        with self.lock:
            self.collector.feed_lines(lines)

    def _unblock_reader(self) -> None:
        # If k6 died before opening the FIFO, the reader still waits in open(): open the
        # write end once so it sees end-of-file.
        if self._reader.is_alive():
            with contextlib.suppress(OSError):
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                os.close(fd)

    def snapshot(self, since: int) -> tuple[dict[str, object], int]:
        """Windows closed after ``since``, the threshold submetrics so far, and k6's CPU in
        those seconds, as JSON."""
        # k6 flushes its CSV about once a second, and a second's last samples can come a
        # flush later: a second counts as closed 3 s on.
        closed_before = int(time.time()) - 3
        with self.lock:
            windows = {
                str(t): w.to_dict()
                for t, w in self.collector.windows.items()
                if since < t <= closed_before
            }
            keys = {s.key for s in self.selectors} | {s.metric for s in self.selectors}
            aggregates = {k: v.to_dict() for k, v in self.collector.aggregates.items() if k in keys}
        latest = max((int(t) for t in windows), default=since)
        # k6's CPU in the same seconds (a sample at s covers the second before it).
        cpu = {str(t): round(c, 4) for t, c in self.cpu.items() if since < t - 1 <= latest}
        return {"windows": windows, "aggregates": aggregates, "cpu": cpu}, latest


def _tail(path: Path, lines: int) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def _reason(status: RunnerStatus, exit_code: int, tail: list[str]) -> str:
    if not status.failed:
        return ""
    if status is RunnerStatus.KILLED:
        return f"k6 was killed by signal {-exit_code}"
    if status is RunnerStatus.OOM_KILLED:
        return "k6 ran out of memory: the kernel's OOM killer ended it (cgroup oom_kill rose)"
    last = tail[-1] if tail else ""
    return f"k6 exited with code {exit_code}" + (f": {last[:300]}" if last else "")


def _emit(event: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def run(
    runner: Runner,
    emit: Callable[[dict[str, object]], None],
    ready_timeout: float,
    *,
    result_stdout: bool = False,
    control_port: int | None = None,
    control_token: str = "",
) -> int:
    """The runner's whole life: the result written (and printed with ``result_stdout``);
    the process's exit code from :func:`exit_code_for`. With ``control_port``, its live
    snapshots are served there (:mod:`.control`) instead of printed, to whoever bears
    ``control_token``."""
    runner.start()
    runner.sample_cpu()  # the baseline: each later sample covers the second before it
    control = None
    if control_port is not None:
        control = ControlServer(
            runner.host,
            control_port,
            runner.snapshot,
            lambda: runner.proc is not None and runner.proc.poll() is None,
            lambda: runner.stop(RunnerStatus.STOPPED),
            token=control_token,
        )
    try:
        if runner.wait_ready(ready_timeout):
            emit({"event": "ready", "index": runner.index, "api": runner.api})
        else:
            runner.stop(RunnerStatus.ERROR)
        since = 0
        while runner.proc is not None and runner.proc.poll() is None:
            time.sleep(1.0)
            runner.sample_cpu()
            if not runner.started_at:
                status = runner.status()
                if status is not None and not status.get("paused", True):
                    runner.started_at = time.time()
            # In a pod the log is not read live (the coordinator asks the control endpoint),
            # and every line would bring it nearer its rotation.
            if runner.started_at and not result_stdout:
                data, since = runner.snapshot(since)
                emit({"event": "progress", "index": runner.index, **data})
        result = runner.finish()
    finally:
        if control is not None:
            control.close()
    emit(
        {
            "event": "done",
            "index": runner.index,
            "status": result.status.value,
            "exit_code": result.exit_code,
            "reason": result.reason,
            "result": str(runner.out_dir / "result.json"),
        }
    )
    if result_stdout:
        # In a pod the log is how the result leaves: compressed, in chunks a log keeps whole.
        for line in result_lines(runner.index, result.to_dict()):
            emit(line)
    return exit_code_for(result)


def exit_code_for(result: RunnerResult) -> int:
    """The runner process's exit code: 0 when its k6 did its part (or was stopped by the
    fleet); otherwise k6's own code, or 3, so that a pod running it ends Failed and the run
    sees it within seconds."""
    if not result.status.failed:
        return 0
    return result.exit_code if 0 < result.exit_code < 256 else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stressbed.runner", description=__doc__)
    parser.add_argument("--bundle", type=Path, required=True, help="a rendered bundle directory")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="where result.json goes")
    parser.add_argument(
        "--api-host",
        default="127.0.0.1",
        help="where k6's REST API listens ('auto': the address this host's name resolves to, "
        "a container's own)",
    )
    parser.add_argument("--api-port", type=int, default=0, help="its port (0: any free one)")
    parser.add_argument(
        "--result-stdout",
        action="store_true",
        help="also print the result document as the last JSON line (for pod logs)",
    )
    parser.add_argument(
        "--control-port",
        type=int,
        default=None,
        help="serve live snapshots and a stop on this port, beside k6's API (in a pod), to "
        f"requests bearing the run's token, read from ${TOKEN_ENV}",
    )
    parser.add_argument("--keep-raw", action="store_true", help="keep samples.csv.gz")
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    # Taken out of the environment at once: nothing this runner starts (k6) inherits it.
    token = os.environ.pop(TOKEN_ENV, "")
    if args.control_port is not None and not token:
        parser.error(f"--control-port: {TOKEN_ENV} is not set; expected the run's control token")
    host = args.api_host
    if host == "auto":
        host = socket.gethostbyname(socket.gethostname())
    runner = Runner(
        args.bundle / "script.js",
        args.index,
        args.count,
        args.out,
        host=host,
        port=args.api_port,
        keep_raw=args.keep_raw,
    )

    def on_signal(signum: int, _frame: object) -> None:
        threading.Thread(target=runner.stop, args=(RunnerStatus.STOPPED,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return run(
            runner,
            _emit,
            args.ready_timeout,
            result_stdout=args.result_stdout,
            control_port=args.control_port,
            control_token=token,
        )
    finally:
        runner.fifo.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
