from locust_llm.report.knee import find_knee, max_passing

USERS = [1, 2, 5, 10, 20, 30, 40, 50, 60, 80, 100]


def test_knee_on_synthetic_plateau():
    ys = [25.0 * min(u, 40) for u in USERS]
    knee = find_knee(USERS, ys)
    assert knee is not None and knee.x == 40


def test_knee_with_noise_and_drop_after_peak():
    # a measured table: throughput peaks at 30 users, then drops.
    users = [1, 5, 10, 15, 25, 30, 35, 40, 45, 50, 55, 100]
    tput = [177, 269, 493, 609, 993, 1158, 702, 783, 678, 781, 748, 598]
    knee = find_knee(users, tput)
    assert knee is not None and knee.x == 30


def test_no_knee_when_linear_or_too_few_points():
    assert find_knee(USERS, [3.0 * u for u in USERS]) is None
    assert find_knee([1, 2], [1, 2]) is None
    assert find_knee([1, 2, 3], [5, 5, 5]) is None


def test_max_passing_is_contiguous_from_the_bottom():
    assert max_passing([10, 20, 30, 40], [True, True, False, True]) == 20
    assert max_passing([10, 20], [False, True]) is None
    assert max_passing([10, 20], [None, None]) is None
    assert max_passing([30, 10, 20], [True, True, True]) == 30
