"""ETSI TS 103 221-2 X2/X3 PDUs (LI-HANDOVER.md §3): a delivery format of the dataplane, beside
classic flow-tap and jmirror copies (:mod:`flowtap.dataplane.encap`).

:mod:`pdu` (layout, whole PDUs in and out, keepalives), :mod:`template` (the per-packet
encoder of one task), :mod:`stream` (PDUs out of a TLS byte stream). Pure.
"""
