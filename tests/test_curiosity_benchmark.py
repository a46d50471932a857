"""benchmarks/curiosity.py: the hand-written reference policies it prints for scale."""

from conftest import load_benchmark


def test_mountaincar_reference_policies_reach_the_flag_and_the_first_push_matters():
    bench = load_benchmark("curiosity")
    ref = bench.reference_returns("MountainCar-v0", episodes=20)
    plain, first_push = ref["push with velocity"], ref["push with velocity, first push by start position"]
    # both reach the flag in every episode (a return of -200 is a timeout), and choosing the first push by
    # the start position saves steps
    assert -200 < plain < first_push < -100
    assert bench.reference_returns("CartPole-v1") == {}
