"""Throttle counts are kept in fixed windows aligned on the clock
(:func:`lookalike.clients.count_in_window`): a minute's window starts on the minute. Two
requests that straddle a window's edge each find a fresh allowance, which is the design,
so a test that expects the second of them to be refused must not start at the end of a
minute."""

import time


def steady_window(margin=5.0, duration=60):
    """Wait, if need be, until at least ``margin`` seconds remain in the current window."""
    left = duration - time.time() % duration
    if left < margin:
        time.sleep(left + 0.05)
