"""``make demo`` (``python -m flowtap.demo``): the seed's flow-tap story, live in network
namespaces; :mod:`flowtap.demo.lab`, :mod:`~flowtap.demo.config` and
:mod:`~flowtap.demo.traffic` are shared with the end-to-end test."""
