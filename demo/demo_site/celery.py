"""The Celery app of the demo — Celery's documented Django pattern, import changed only
(and the thread settings below)."""

import os

from celeriac import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
# One worker process per core already keeps every core busy: numpy's BLAS threads and
# the tokenizer's thread pool on top would make the parallel tasks fight over the cores.
# Set before anything loads numpy (the pool processes load it); the env still wins.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = Celery("demo_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
