"""Celery tasks of the merchant's answers (``aftersales.actions``). Tenant-aware: each runs in
the schema it was sent from; the sweep runs in every tenant's schema (beat)."""

from __future__ import annotations

from celery import shared_task

from ecbao.celery import register_periodic


@shared_task(acks_late=True, max_retries=0)
def send_action_task(action_id: int) -> str:
    """Send one waiting answer (WeChat's one call per order per minute: sent when its minute
    came). Safe to run twice: a claimed or done action is left alone."""
    from aftersales import actions

    return actions.send(action_id).status


@shared_task(acks_late=True, max_retries=0)
def send_due_actions_task(limit: int = 50) -> int:
    """Send every waiting answer whose time came (no answer from the platform: backoff)."""
    from aftersales import actions

    return actions.send_due(limit=limit)


register_periodic("aftersales.send_due_actions", "aftersales.tasks_actions.send_due_actions_task", 60.0)
