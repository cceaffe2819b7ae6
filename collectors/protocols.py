"""Protocol numbers used across NetSpectra: one place for each wire constant."""

# Link types (tcpdump.org LINKTYPE_* values as written in pcap/pcapng headers).
LINK_NULL = 0          # BSD loopback: 4-byte address family in the capturing host's byte order
LINK_ETHERNET = 1
LINK_RAW_BSD = 12      # raw IP; some BSDs write 12 instead of 101
LINK_RAW = 101
LINK_LOOP = 108        # OpenBSD loopback: address family in network byte order
LINK_LINUX_SLL = 113
LINK_IPV4 = 228
LINK_IPV6 = 229
LINK_LINUX_SLL2 = 276

LINK_NAMES = {
    LINK_NULL: "null", LINK_ETHERNET: "eth", LINK_RAW_BSD: "raw", LINK_RAW: "raw", LINK_LOOP: "loop",
    LINK_LINUX_SLL: "sll", LINK_IPV4: "ipv4", LINK_IPV6: "ipv6", LINK_LINUX_SLL2: "sll2",
}

# EtherTypes.
ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN_TAGS = (0x8100, 0x88A8, 0x9100)   # 802.1Q, 802.1ad (QinQ), legacy QinQ
ETH_MPLS = (0x8847, 0x8848)                # unicast, multicast
ETH_PPPOE_SESSION = 0x8864
ETH_TEB = 0x6558                           # transparent Ethernet bridging (an Ethernet frame inside)
ETH_ERSPAN_2 = 0x88BE                      # ERSPAN type I (no GRE sequence number) or II
ETH_ERSPAN_3 = 0x22EB
ETH_PPP = 0x880B                           # PPP in enhanced GRE (PPTP)
PPP_IPV4, PPP_IPV6 = 0x0021, 0x0057

# BSD loopback address families meaning IPv6 (values differ per OS).
AF_INET = 2
AF_INET6_VALUES = (10, 24, 28, 30)

# IP protocol numbers.
IPPROTO_ICMP = 1
IPPROTO_IPIP = 4       # IPv4 inside (IPv4 or IPv6)
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
IPPROTO_IPV6 = 41      # IPv6 inside (6in4, 6in6)
IPPROTO_GRE = 47
IPPROTO_SCTP = 132
# IPv6 extension headers walked to reach the transport header (RFC 8200 order; 44 = fragment).
IPV6_EXT_HOPOPTS = 0
IPV6_EXT_ROUTING = 43
IPV6_EXT_FRAGMENT = 44
IPV6_EXT_AH = 51
IPV6_EXT_DSTOPTS = 60
IPV6_EXT_MOBILITY = 135
IPV6_EXT_HEADERS = (IPV6_EXT_HOPOPTS, IPV6_EXT_ROUTING, IPV6_EXT_FRAGMENT, IPV6_EXT_AH,
                    IPV6_EXT_DSTOPTS, IPV6_EXT_MOBILITY, 139, 140)
IPV6_MAX_EXT_HEADERS = 8   # deeper chains are counted as malformed (denial-of-service guard)

# Transport protocols whose ports go into the flow key. SCTP also starts with two ports, but
# pmacct and NetFlow v5 tooling key SCTP flows with ports 0; we follow them for comparable numbers.
PORT_PROTOCOLS = (IPPROTO_TCP, IPPROTO_UDP)
# Names for reports (IANA keywords, lower case); others print as their number.
PROTOCOL_NAMES = {IPPROTO_ICMP: "icmp", 2: "igmp", 4: "ipip", IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp", 41: "ipv6",
                  47: "gre", 50: "esp", 51: "ah", IPPROTO_ICMPV6: "icmpv6", 89: "ospf", 103: "pim", 112: "vrrp",
                  IPPROTO_SCTP: "sctp"}

# Application ports decoded for DNS (53), mDNS (5353) and LLMNR (5355): all share the DNS wire format.
DNS_UDP_PORTS = (53, 5353, 5355)
DNS_TCP_PORTS = (53,)
SSDP_UDP_PORT = 1900   # HTTP over UDP (SSDP M-SEARCH / NOTIFY)
SIP_PORTS = (5060,)    # SIP over UDP or TCP (5061 is SIP over TLS: its hellos are read, not its messages)

# Tunnels' UDP ports (by destination port; collector options add VXLAN ports).
VXLAN_PORT = 4789
GENEVE_PORT = 6081
GTPU_PORT = 2152

# Capture-file sanity bounds.
MAX_RECORD_BYTES = 262144  # libpcap's MAXIMUM_SNAPLEN; a larger record header means a corrupt file
