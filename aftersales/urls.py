"""After-sales pages under /aftersales/ (namespace ``aftersales``): the queues and detail
(views), returns in (views_returns), charge-backs (views_chargebacks)."""

from aftersales import views, views_chargebacks, views_returns

app_name = "aftersales"

urlpatterns = [*views.urlpatterns, *views_returns.urlpatterns, *views_chargebacks.urlpatterns]
