"""ETSI TS 103 221-1 X1: the tasking interface an ADMF drives over HTTPS (LI-HANDOVER.md §2).

A second front-end beside :mod:`flowtap.dtcp` translating into :mod:`flowtap.intercept`.
The codec is pure: :mod:`names` (namespaces, version), :mod:`codes` (error codes and the
codec's errors), :mod:`values` (XSD simple types), :mod:`targets` and :mod:`model` (typed
messages), :mod:`xmlread` (hardened parsing, XSD sequences), :mod:`decode_parts` and
:mod:`decode` (bytes -> requests, one result per message), :mod:`decode_response` (what an
ADMF reads back), :mod:`encode` (requests and responses -> bytes).
"""
