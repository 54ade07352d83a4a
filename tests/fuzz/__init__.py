"""Fuzz targets (issue 13 item 7). Each target module has ``fuzz_one(data: bytes)``; ``run.py``
drives them with atheris for long runs, ``test_fuzz.py`` briefly under pytest."""

# Target name -> module. Imported lazily so the atheris runner can instrument flowtap first.
TARGETS = {
    "netconf_framing": "tests.fuzz.framing_target",
    "netconf_rpc": "tests.fuzz.rpc_target",
    "netconf_filter": "tests.fuzz.filter_target",
    "dtcp_message": "tests.fuzz.dtcp_message_target",
    "dtcp_fields": "tests.fuzz.dtcp_fields_target",
    "junos_text": "tests.fuzz.junos_text_target",
    "x1_request": "tests.fuzz.x1_request_target",
    "x3_stream": "tests.fuzz.x3_stream_target",
}
