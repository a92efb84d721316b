"""``{% load logistics_tracking %}``: ``{{ order.ship_by|countdown }}`` renders the ship-by countdown
(剩 5 小时 12 分 / 超时 2 小时) as a badge coloured by urgency (``logistics.tracking.ship_countdown``)."""

from django import template
from django.utils.html import format_html

from logistics import tracking

register = template.Library()


@register.filter
def countdown(ship_by):
    text, level = tracking.ship_countdown(ship_by)
    if not text:
        return ""
    return format_html('<span class="countdown countdown-{}" data-testid="countdown">{}</span>', level, text)
