# Celery's pattern: the app is imported when Django starts, so shared_task binds to it.
from demo_site.celery import app as celery_app

__all__ = ("celery_app",)
