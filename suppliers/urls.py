"""Merchant pages of the suppliers app, under /suppliers/ (namespace ``suppliers``).

Each part adds its own lines: suppliers and their SKUs (views_admin), routing rules and the
exception queue (views_rules), dispatches and performance (views_dispatch)."""

from django.urls import path  # noqa: F401

app_name = "suppliers"

urlpatterns: list = []
