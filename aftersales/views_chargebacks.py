"""After-sales pages (see aftersales.urls)."""

urlpatterns: list = []
