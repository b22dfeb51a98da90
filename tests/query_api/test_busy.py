"""``[api] active_requests``: at most that many calls of the app at once; a streamed body outside the limit."""

from __future__ import annotations

import threading
import time

from query_api.busy import ActiveRequests, Turns, given_up, turns_for, waiting
from query_api import deadline
from query_api.deadline import DeadlinePool
from query_api.errors import ApiError


class Gate:
    """A WSGI app whose calls wait at a gate, counting how many are inside at once."""

    def __init__(self):
        self.open = threading.Event()
        self.lock = threading.Lock()
        self.inside = self.most = 0

    def __call__(self, environ, start_response):
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        self.open.wait(10)
        with self.lock:
            self.inside -= 1
        start_response("200 OK", [])
        return [b"ok"]


def test_at_most_the_limit_runs_at_once_and_the_rest_wait_their_turn():
    gate = Gate()
    app = ActiveRequests(gate, 2)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(b"".join(app({}, lambda *a: None)))) for _ in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while gate.inside < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # time for a third call to get in, were it let in
    assert (gate.inside, gate.most) == (2, 2)
    gate.open.set()
    for thread in threads:
        thread.join(10)
    assert answers == [b"ok"] * 6 and gate.most == 2


def test_a_streamed_body_is_written_outside_the_limit():
    def streaming(environ, start_response):
        start_response("200 OK", [])
        return (chunk for chunk in (b"a", b"b"))

    app = ActiveRequests(streaming, 1)
    first = app({}, lambda *a: None)  # its body not read yet, as a stream being written
    second = []
    caller = threading.Thread(target=lambda: second.append(b"".join(app({}, lambda *a: None))), daemon=True)
    caller.start()
    caller.join(5)  # would wait for ever if the first still held the one turn
    assert second == [b"ab"] and b"".join(first) == b"ab"


def test_turns_go_in_the_order_the_requests_came():
    turns, order = Turns(1), []
    turns.__enter__()  # the one turn is taken: everyone below queues
    waiters = []
    for n in range(5):
        def wait(n=n):
            with turns:
                order.append(n)
        waiters.append(threading.Thread(target=wait))
        waiters[-1].start()
        deadline = time.monotonic() + 5
        while len(turns._waiting) < n + 1 and time.monotonic() < deadline:  # queued before the next comes
            time.sleep(0.001)
    turns.__exit__(None, None, None)
    for waiter in waiters:
        waiter.join(5)
    assert order == [0, 1, 2, 3, 4]


def test_a_request_arriving_as_a_turn_frees_does_not_cut_in():
    turns, order = Turns(1), []
    turns.__enter__()
    def waiter():
        with turns:
            order.append("waited")
    thread = threading.Thread(target=waiter)
    thread.start()
    deadline = time.monotonic() + 5
    while not turns._waiting and time.monotonic() < deadline:
        time.sleep(0.001)
    turns.__exit__(None, None, None)
    with turns:  # arrives at once, before the waiter has run again: a semaphore would let it in first
        order.append("arrived")
    thread.join(5)
    assert order == ["waited", "arrived"]


def test_by_default_one_turn_per_core_of_the_process():
    assert [turns_for(0, cores=2, processes=n) for n in (1, 2, 4)] == [2, 1, 1]
    assert turns_for(0, cores=8, processes=3) == 2
    assert turns_for(3, cores=2, processes=2) == 3  # as set


def one_turn_calls(before: dict):
    """An app behind one turn that runs ``before[name]()`` for a request named ``name`` (in its environ), then
    notes the name in ``order``; and a maker of threads calling it."""
    order = []

    def app(environ, start_response):
        before.get(environ["name"], lambda: None)()
        order.append(environ["name"])
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = ActiveRequests(app, 1)
    return wrapped, order, lambda name: threading.Thread(target=lambda: wrapped({"name": name}, lambda *a: None))


def test_a_request_waiting_on_io_lends_its_turn_and_takes_one_back_before_those_queued():
    lent, resume = threading.Event(), threading.Event()

    def waits():
        with waiting():
            lent.set()
            resume.wait(10)

    wrapped, order, call = one_turn_calls({"waits": waits})
    waiter = call("waits")
    waiter.start()
    assert lent.wait(10)
    meanwhile = call("meanwhile")
    meanwhile.start()
    meanwhile.join(5)  # would wait for ever behind the one turn, were it not lent
    assert order == ["meanwhile"]
    turns = wrapped._turns
    turns.__enter__()  # someone holds the turn as the waiter comes back
    resume.set()
    later = call("later")
    deadline = time.monotonic() + 5
    while len(turns._waiting) < 1 and time.monotonic() < deadline:  # the waiter queued again
        time.sleep(0.001)
    later.start()
    while len(turns._waiting) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    turns.__exit__(None, None, None)
    for thread in (waiter, later):
        thread.join(5)
    assert order == ["meanwhile", "waits", "later"]



def test_a_request_that_gave_up_its_turn_finishes_without_one_and_the_turn_is_given_back_once():
    """Its last wait (the audit commit) over, a request does not queue for a turn again behind those running."""
    gave_up, resume, holding, release = (threading.Event() for _ in range(4))

    def gives_up():
        given_up()
        gave_up.set()
        resume.wait(10)

    def holds():
        holding.set()
        release.wait(10)

    wrapped, order, call = one_turn_calls({"gives up": gives_up, "holds": holds})
    first, holder = call("gives up"), call("holds")
    first.start()
    assert gave_up.wait(10)
    holder.start()
    assert holding.wait(10)  # the one turn went to the next request
    resume.set()
    first.join(5)  # would wait for the holder's turn, were it taken again
    assert order == ["gives up"]
    release.set()
    holder.join(5)
    assert order == ["gives up", "holds"] and wrapped._turns._free == 1  # given back once, not twice


def test_giving_up_a_turn_outside_one_changes_nothing():
    turns = Turns(1)
    given_up()  # a streamed body, a test calling the app bare: no turn held
    assert turns._free == 1

def test_a_request_whose_search_runs_long_lends_its_turn_meanwhile():
    """With one turn (one core per worker), a pathological search must not hold up the
    worker's other requests for as long as ``[api] search_timeout``."""
    pool, started, release, order = DeadlinePool(2, "search"), threading.Event(), threading.Event(), []

    def search():
        started.set()
        release.wait(10)

    def app(environ, start_response):
        if environ["name"] == "slow search":
            pool.run(search, 20)
        order.append(environ["name"])
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = ActiveRequests(app, 1)
    call = lambda name: threading.Thread(target=lambda: wrapped({"name": name}, lambda *a: None))  # noqa: E731
    slow, quick = call("slow search"), call("quick")
    slow.start()
    assert started.wait(5)  # the slow search holds the one turn and runs
    quick.start()
    quick.join(5)  # would wait behind the slow search's turn for as long as the search runs
    done_meanwhile = list(order)
    release.set()
    slow.join(5)
    assert done_meanwhile == ["quick"] and order == ["quick", "slow search"]


def test_a_search_given_up_while_its_turn_is_lent_never_starts(monkeypatch):
    """Past its deadline a request gives up its search at once, before it waits for its turn back:
    a pool thread freed meanwhile must not run a search whose answer no one reads."""
    monkeypatch.setattr(deadline, "HELD_TURN", 0.01)
    pool, blocker_started, free_pool, ran = DeadlinePool(1, "search"), threading.Event(), threading.Event(), []

    def blocker():
        blocker_started.set()
        free_pool.wait(10)

    threading.Thread(target=lambda: pool.run(blocker, 20), daemon=True).start()
    assert blocker_started.wait(5)  # the pool's one thread is busy: the next search queues
    answers = []

    def app(environ, start_response):
        try:
            pool.run(lambda: ran.append("late search"), 0.2)
        except ApiError as e:
            answers.append(e.status)
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = ActiveRequests(app, 1)
    request = threading.Thread(target=lambda: wrapped({}, lambda *a: None))
    request.start()
    turns = wrapped._turns
    deadline_ = time.monotonic() + 5
    while turns._free == 0 and time.monotonic() < deadline_:  # wait until the request lends its turn
        time.sleep(0.001)
    turns.__enter__()  # another request holds the turn past the search's deadline
    while not turns._waiting and time.monotonic() < deadline_:  # past its deadline, it queues for its turn
        time.sleep(0.001)
    free_pool.set()  # the pool's thread frees while the late request waits for its turn
    time.sleep(0.2)  # time for the pool's thread to take up the late search, were it still there
    turns.__exit__(None, None, None)
    request.join(5)
    assert answers == [503] and ran == []
