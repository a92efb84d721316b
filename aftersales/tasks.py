"""Celery tasks of the after-sales app (thin: they call services)."""
