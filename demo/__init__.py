"""The demo wiring: connects a tenant to sandbox shops and seeds its catalogue
(``manage.py sandbox_demo``, ``manage.py demo_catalog``). It stands outside both ecbao's layers
and the sandbox, so it may import either; neither imports it."""
