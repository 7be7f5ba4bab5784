"""Coarse-grained CPU parallelism: order, errors, cancel, and the kernels' thread counts put back."""
import threading
import time

import cv2
import pytest
import torch

from core import parallel
from core.errors import Cancelled
from core.jobs import Job


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_results_come_back_in_order_and_kernels_run_single_threaded():
    seen = []

    def work(i):
        seen.append((torch.get_num_threads(), cv2.getNumThreads()))
        time.sleep(0.01 * (5 - i))   # later items finish first
        return i * i

    before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(2)
    try:
        assert parallel.cpu_map(work, list(range(5)), "cpu") == [0, 1, 4, 9, 16]
        assert all(t == (1, 1) for t in seen)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before[0])
    assert cv2.getNumThreads() == before[1]


def test_an_error_in_a_piece_is_raised_to_the_caller_and_threads_are_restored():
    torch.set_num_threads(2)

    def work(i):
        if i == 2:
            raise ValueError("piece 2 failed")
        return i

    with pytest.raises(ValueError, match="piece 2"):
        parallel.cpu_map(work, list(range(4)), "cpu")
    assert torch.get_num_threads() == 2


def test_cancel_stops_pieces_not_yet_started():
    torch.set_num_threads(2)
    job = Job()
    started = []
    gate = threading.Event()

    def work(i):
        started.append(i)
        job.cancel()
        gate.wait(0.5)
        return i

    with pytest.raises(Cancelled):
        parallel.cpu_map(work, list(range(20)), "cpu", job)
    assert len(started) < 20


def test_nested_use_runs_inline():
    torch.set_num_threads(2)
    inner = parallel.cpu_map(lambda i: parallel.cpu_map(lambda j: i * 10 + j, [0, 1], "cpu"), [1, 2], "cpu")
    assert inner == [[10, 11], [20, 21]]


def test_off_the_cpu_one_worker():
    assert parallel.workers_for("cuda", 8) == 1
