"""The README's example tasks (used by `make demo`)."""

from celeriac import Celery

app = Celery("tasks")  # broker: CELERIAC_BROKER_URL, or the embedded PostgreSQL


@app.task
def add(x, y):
    return x + y


@app.task(bind=True, max_retries=3, default_retry_delay=0.2)
def flaky(self, n):
    if self.request.retries < n:
        raise self.retry(exc=ConnectionError("upstream busy"))
    return f"succeeded after {self.request.retries} retries"


@app.task(time_limit=1)
def stuck():
    while True:
        pass
