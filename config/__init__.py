"""The reference shop's project package.

The Celery app is imported here, as Celery's Django guide does, so that it is the current
app in every process of the project (web, commands, workers): jobs are sent through
``celery.current_app`` (``lookalike.jobs.fanout.send_tasks``), which would otherwise be
Celery's unconfigured default app (broker ``amqp://localhost``, queue ``celery``).
"""

from .celery import app as celery_app

__all__ = ("celery_app",)
