"""Pure helpers of the benchmarks: /proc/<pid>/stat parsing and percentiles."""

from __future__ import annotations

import os
import threading
import time

import pytest

from smsflow.devstack.flowrun import percentile
from smsflow.devstack.stack import context_switches, cpu_seconds, parse_proc_stat, parse_switches


def _stat(comm: str, pgrp: int, utime: int, stime: int, cutime: int, cstime: int) -> str:
    # pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime priority ...
    return (f"4242 ({comm}) S 1 {pgrp} {pgrp} 0 -1 4194560 100 0 0 0 "
            f"{utime} {stime} {cutime} {cstime} 20 0 1 0 123 456789 12 ...\n")


def test_parse_proc_stat_sums_own_and_reaped_children_ticks() -> None:
    assert parse_proc_stat(_stat("python3", 4242, 100, 20, 3, 1)) == (4242, 124)


def test_parse_proc_stat_survives_spaces_and_parens_in_comm() -> None:
    assert parse_proc_stat(_stat("a) b (c", 7, 1, 2, 0, 0)) == (7, 3)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs procfs")
def test_cpu_seconds_reads_this_process_and_zero_for_a_missing_one() -> None:
    sum(range(2_000_000))  # burn a little CPU
    found = cpu_seconds({"me": os.getpid(), "gone": 2**22 + 1})
    assert found["me"] > 0
    assert found["gone"] == 0.0


def test_parse_switches_adds_voluntary_and_involuntary() -> None:
    status = ("Name:\tpython3\nThreads:\t3\nvoluntary_ctxt_switches:\t120\n"
              "nonvoluntary_ctxt_switches:\t7\n")
    assert parse_switches(status) == 127


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs procfs")
def test_context_switches_count_every_thread_and_zero_for_a_missing_process() -> None:
    before = context_switches({"me": os.getpid()})["me"]
    slept, release = threading.Event(), threading.Event()

    def sleep_and_wake() -> None:  # a second thread that sleeps and is woken 50 times
        for _ in range(50):
            time.sleep(0.001)
        slept.set()
        release.wait()

    sleeper = threading.Thread(target=sleep_and_wake)
    sleeper.start()
    slept.wait()
    after = context_switches({"me": os.getpid()})["me"]  # while the thread is still there
    release.set()
    sleeper.join()

    assert after >= before + 50
    assert context_switches({"gone": 2**22 + 1}) == {"gone": 0}


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([5.0], 99) == 5.0
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0
    assert percentile([], 50) is None
