#!/usr/bin/env bash
# Build (up) or remove (down) the dataplane test topology by hand; same layout as
# src/flowtap/tools/netns.py (which the tests and bench use):
#
#   P-snd  snd0 198.18.1.2 -- rin  198.18.1.1 ┐
#   P-rcv  rcv0 198.18.2.2 -- rout 198.18.2.1 ┤ P-rtr (forwarding; run the tap here)
#   P-med  med0 198.18.3.2 -- rmed 198.18.3.1 ┘ (content destination)
#
# IPv6: 2001:db8:N::/64, same host numbers. rcv owns 198.19.0.0/16 and 2001:db8:19::/48.
# usage: dataplane/netns.sh up|down [PREFIX]   (PREFIX defaults to "ftdp"; needs root)
set -euo pipefail
cmd=${1:-}; P=${2:-ftdp}
mac() { printf '02:fd:00:00:%02x:%02x' "$1" "$2"; }
case "$cmd" in
up)
  for r in snd rtr rcv med; do
    ip netns add "$P-$r"; ip -n "$P-$r" link set lo up
    ip netns exec "$P-$r" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  done
  ip netns exec "$P-rtr" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  for spec in snd:snd0:rin:1 rcv:rcv0:rout:2 med:med0:rmed:3; do
    IFS=: read -r role end rend n <<<"$spec"
    ip link add "$end" netns "$P-$role" address "$(mac "$n" 2)" type veth \
      peer name "$rend" netns "$P-rtr" address "$(mac "$n" 1)"
    for side in "$role:$end:2:1" "rtr:$rend:1:2"; do
      IFS=: read -r ns dev host peer <<<"$side"
      ip -n "$P-$ns" addr add "198.18.$n.$host/24" dev "$dev"
      ip -n "$P-$ns" addr add "2001:db8:$n::$host/64" dev "$dev" nodad
      ip -n "$P-$ns" neigh replace "198.18.$n.$peer" lladdr "$(mac "$n" "$peer")" dev "$dev" nud permanent
      ip -n "$P-$ns" neigh replace "2001:db8:$n::$peer" lladdr "$(mac "$n" "$peer")" dev "$dev" nud permanent
      ip -n "$P-$ns" link set "$dev" up
    done
    ip -n "$P-$role" route add default via "198.18.$n.1"
    ip -n "$P-$role" -6 route add default via "2001:db8:$n::1"
  done
  ip -n "$P-rcv" route add local 198.19.0.0/16 dev lo
  ip -n "$P-rtr" route add 198.19.0.0/16 via 198.18.2.2
  ip -n "$P-rcv" -6 route add local 2001:db8:19::/48 dev lo
  ip -n "$P-rtr" -6 route add 2001:db8:19::/48 via 2001:db8:2::2
  echo "up: $P-snd $P-rtr $P-rcv $P-med"
  ;;
down)
  for r in snd rtr rcv med; do ip netns del "$P-$r" 2>/dev/null || true; done
  ;;
*) echo "usage: $0 up|down [PREFIX]" >&2; exit 2 ;;
esac
