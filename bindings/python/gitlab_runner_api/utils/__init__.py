"""utils.Retrier, as in the Python package (the library retries by itself; this is for your code)."""

import logging
import time

from . import ansi

logger = logging.getLogger("gitlab_runner_api")


class Retrier(object):
    """Calls `func` up to `n_retries` times while it raises `to_catch`, sleeping `wait_seconds`
    after each failure; then raises `to_raise`. Other exceptions propagate at once."""

    def __init__(self, func, to_catch, to_raise, n_retries=3, wait_seconds=5):
        self.func = func
        self.to_catch = to_catch
        self.to_raise = to_raise
        self.n_retries = n_retries
        self.wait_seconds = wait_seconds

    def __call__(self, *args, **kwargs):
        for i in range(1, self.n_retries + 1):
            try:
                return self.func(*args, **kwargs)
            except self.to_catch as e:
                logger.warning(
                    "Caught error running %s on retry %d of %d, waiting %d seconds. %r",
                    getattr(self.func, "__name__", self.func),
                    i,
                    self.n_retries,
                    self.wait_seconds,
                    e,
                )
                time.sleep(self.wait_seconds)
        raise self.to_raise


__all__ = ["Retrier", "ansi"]
