"""The harness of bench/bench_torch_overhead.py and bench/bench_numpy_overhead.py: host cost of
calls over many tiny tensors, timed in interleaved rounds so that drift hits every call alike."""
import statistics
import time


def interleaved_times(calls: dict, rounds: int, inner: int) -> dict:
    """{key: [seconds per call, one per round]}: each round times `inner` calls of every entry of
    `calls` in turn, after one untimed call of each (caches, first-call work)."""
    times = {key: [] for key in calls}
    for fn in calls.values():
        fn()
    for _ in range(rounds):
        for key, fn in calls.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            times[key].append((time.perf_counter() - start) / inner)
    return times


def per_tensor_us(times: list, n: int) -> tuple:
    """(p20, p50, p80) of the rounds, in microseconds per tensor of a call over n tensors."""
    q = statistics.quantiles(times, n=5)
    return tuple(1e6 * x / n for x in (q[0], statistics.median(times), q[3]))


def emit(text: str, out) -> None:
    """Prints the table, and writes it to `out` too when given."""
    print(text)
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
