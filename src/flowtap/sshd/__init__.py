"""The SSH side that the NETCONF and DTCP services share: the hardened server, who may connect
(admission), the listeners that commits move, and reading a session's framed input."""
