"""What a window keeps of its packets' L7 rows beside its flow records: per-host DNS counts and
names (flows/dns.py) and SIP calls (flows/sip.py), both carried by shard 0, and the flows' TLS
names (flows/tls.py, each by the shard of its flow), from batch to window as one value, combined
as partials are."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from flows.dns import DnsCounts
from flows.sip import SipCalls
from flows.tls import TlsNames


@dataclass(frozen=True)
class L7Facts:
    dns: Optional[DnsCounts] = None
    tls: Optional[TlsNames] = None
    sip: Optional[SipCalls] = None      # (a snapshot from before SIP calls reads None: the class default)

    @staticmethod
    def from_batch(batch, wins, starts: list[int]) -> dict[int, "L7Facts"]:
        """window start -> what the batch's L7 rows in that window say."""
        if not len(batch.l7):
            return {}
        dns, tls = DnsCounts.from_batch(batch, wins, starts), TlsNames.from_batch(batch, wins, starts)
        sip = SipCalls.from_batch(batch, wins, starts)
        return {w: L7Facts(dns.get(w), tls.get(w), sip.get(w)) for w in dns.keys() | tls.keys() | sip.keys()}

    @staticmethod
    def by_shard(facts: dict[int, "L7Facts"], shards: int) -> list[dict[int, "L7Facts"]]:
        """Per shard, window -> its part: the DNS counts and SIP calls to shard 0, each flow's TLS
        names to its shard."""
        out: list[dict] = [{} for _ in range(shards)]
        for w, f in facts.items():
            tls = f.tls.split(shards) if f.tls is not None else [None] * shards
            for i in range(shards):
                dns, sip = (f.dns, f.sip) if i == 0 else (None, None)
                if dns is not None or tls[i] is not None or sip is not None:
                    out[i][w] = L7Facts(dns, tls[i], sip)
        return out

    @staticmethod
    def combine(parts) -> Optional["L7Facts"]:
        """Several batches' or partials' facts as one; None when none has any."""
        parts = [p for p in parts if p is not None]
        if len(parts) <= 1:
            return parts[0] if parts else None
        dns = [p.dns for p in parts if p.dns is not None]
        return L7Facts(DnsCounts.combine(dns) if dns else None, TlsNames.combine([p.tls for p in parts]),
                       SipCalls.combine([p.sip for p in parts]))
