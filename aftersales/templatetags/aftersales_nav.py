"""``{% load aftersales_nav %}``: ``{% pending_after_sales as n %}`` — how many after-sales wait
for the merchant (待处理), for the main navigation's badge (one indexed count)."""

from django import template

from aftersales.models import AfterSale

register = template.Library()


@register.simple_tag
def pending_after_sales() -> int:
    return AfterSale.objects.filter(queue=AfterSale.Queue.PENDING).count()
