"""The search pool's hand-over: a late job's wake-up must not end a later wait of the same thread."""

import time

import pytest

from query_api.deadline import DeadlinePool
from query_api.errors import ApiError


def test_a_job_past_its_deadline_does_not_hand_its_result_to_the_next_wait_of_its_thread():
    pool = DeadlinePool(2, "search")
    with pytest.raises(ApiError):
        pool.run(lambda: time.sleep(0.3), 0.05)
    time.sleep(0.4)  # the late job has finished and woken this thread, which no longer waits for it
    assert pool.run(lambda: (time.sleep(0.1), 42)[1], 5) == 42


def test_an_error_of_the_work_is_raised_in_the_waiting_thread():
    pool = DeadlinePool(1, "search")
    with pytest.raises(ZeroDivisionError):
        pool.run(lambda: 1 / 0, 5)
    assert pool.run(lambda: "next", 5) == "next"
