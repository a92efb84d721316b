"""Template filters available in every template (registered as a builtin in settings)."""

from django import template

from ecbao import money

register = template.Library()


@register.filter
def get_item(mapping, key):
    """``{{ counts|get_item:"failed" }}`` — dict lookup with a variable key (0 when absent)."""
    if not mapping:
        return 0
    return mapping.get(key, 0)


@register.filter
def fen(value):
    """Integer fen → "¥1,234.50" (``ecbao.money.format_yuan``), money as templates show it."""
    if value in (None, ""):
        return "—"
    return money.format_yuan(int(value), symbol=True, grouping=True)
