"""Running a test's work in several threads, with an exception in any of them raised by the test."""
import threading


def run_threads(target, n):
    """target(k) in threads k = 0..n-1, all started, then joined; the first error is raised."""
    errors = []

    def wrapped(k):
        try:
            target(k)
        except BaseException as e:       # reported by the test, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=wrapped, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
