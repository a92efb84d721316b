"""Template filters available in every template (registered as a builtin in settings)."""

from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    """``{{ counts|get_item:"failed" }}`` — dict lookup with a variable key (0 when absent)."""
    if not mapping:
        return 0
    return mapping.get(key, 0)


@register.filter
def fen(value):
    """Integer fen → "¥1,234.50"; the one place money is formatted for display."""
    if value in (None, ""):
        return "—"
    amount = int(value)
    sign = "-" if amount < 0 else ""
    yuan, cents = divmod(abs(amount), 100)
    return f"{sign}¥{yuan:,}.{cents:02d}"
