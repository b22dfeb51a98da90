from bench.measure import percentile


def test_a_percentile_is_the_nearest_rank_not_the_maximum():
    # Nearest rank: the p-th percentile of n samples is the ceil(p/100 * n)-th smallest. With 100 samples
    # p99 is the 99th; one slow sample (a preemption, a collection) must not be the p99 of a hundred.
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 100) == 100.0
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0
    assert percentile(samples, 0) == 1.0
    assert percentile(list(map(float, range(1, 1001))), 99) == 990.0
