"""The supplier portal, under /supplier/ (namespace ``supplier_portal``): supplier users only."""

from django.urls import path  # noqa: F401

app_name = "supplier_portal"

urlpatterns: list = []
