"""The sandbox's pid 1: a few lines of Python that start the program and report how it ended.

bwrap runs with ``--as-pid-1`` and this script as the sandbox's init
(``python3 -I -S -B -c REAPER_SOURCE FD NOFILE ARGV…``). It lowers ``RLIMIT_NOFILE`` to
``NOFILE`` (bwrap itself needed more), starts the program with ``posix_spawnp`` (signal
dispositions reset to default: Python's own ignored SIGPIPE/SIGXFSZ are not inherited), reaps
every process that ends in the sandbox, and when the program itself exits writes one line to
``FD`` - a pipe the program never holds (it is close-on-exec) - then exits, which makes the
kernel kill whatever is left in the pid namespace. The line is ``exit signal maxrss_kb
cpu_seconds``: the exit status or the number of the signal that ended the program (the other
is ``-``), and ``getrusage`` of all reaped children. It imports nothing slow (``posix`` and
``_signal``, not ``os`` and ``signal``, which cost ~3 ms more): it starts in ~8 ms.

Why a wrapper: ``ru_maxrss`` counts the memory of the process a program was forked from, so
only a small, fresh parent inside the sandbox measures it (its own ~8 MB is the floor of every
figure), and bwrap itself only reports signals as exit code 128+N.

The wrapper ignores the signals a snippet could send to pid 1 (the kernel already refuses
SIGKILL/SIGSTOP to a namespace's init from inside it). A snippet can still lie in its own
report (it runs as the same user); the report only ever describes that snippet's own run.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REAPER_SOURCE", "Report", "parse_report"]

REAPER_SOURCE = """\
import posix, resource, sys
import _signal as signal
fd = int(sys.argv[1])
nofile = int(sys.argv[2])
argv = sys.argv[3:]
posix.set_inheritable(fd, False)
resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
reset = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
         signal.SIGUSR2, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGALRM, signal.SIGTSTP,
         signal.SIGTTIN, signal.SIGTTOU}
for number in reset - {signal.SIGPIPE, signal.SIGXFSZ}:
    signal.signal(number, signal.SIG_IGN)
try:
    pid = posix.posix_spawnp(argv[0], argv, posix.environ, setsigdef=reset)
except OSError as error:
    posix.write(2, f"{argv[0]}: {error.strerror}\\n".encode())
    posix.write(fd, b"127 - 0 0\\n")
    sys.exit(127)
while True:
    try:
        done, status, _ = posix.wait4(-1, 0)
    except ChildProcessError:
        status = 0
        break
    if done == pid:
        break
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
if posix.WIFSIGNALED(status):
    code, signum = "-", str(posix.WTERMSIG(status))
else:
    code, signum = str(posix.WEXITSTATUS(status)), "-"
cpu = usage.ru_utime + usage.ru_stime
posix.write(fd, f"{code} {signum} {usage.ru_maxrss} {cpu:.3f}\\n".encode())
sys.exit(int(code) if code != "-" else 128 + int(signum))
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """How the program ended, as its pid 1 saw it."""

    exit_code: int | None  # None when a signal ended it
    signal: int | None
    peak_rss_kb: int
    cpu_time: float  # seconds, user + system, of every reaped process


def parse_report(data: bytes) -> Report | None:
    """The report in ``data``, or None if there is none or it is malformed."""
    lines = data.decode("ascii", "replace").splitlines()
    if len(lines) != 1:
        return None
    parts = lines[0].split()
    if len(parts) != 4:
        return None
    code, signum, maxrss, cpu = parts
    try:
        exit_code = None if code == "-" else int(code)
        number = None if signum == "-" else int(signum)
        report = Report(
            exit_code=exit_code, signal=number, peak_rss_kb=int(maxrss), cpu_time=float(cpu)
        )
    except ValueError:
        return None
    if (exit_code is None) == (number is None):
        return None
    return report
