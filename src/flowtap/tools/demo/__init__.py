"""``make demo`` (``python -m flowtap.tools.demo``): the seed's flow-tap story, live in network
namespaces; :mod:`flowtap.tools.demo.lab`, :mod:`~flowtap.tools.demo.config` and
:mod:`~flowtap.tools.demo.traffic` are shared with the end-to-end test."""
