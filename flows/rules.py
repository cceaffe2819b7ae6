"""Detection rules: the built-in defaults, the rules file (YAML or JSON) and its validation.

A rules file holds up to three keys, all optional:

    rules:                      # rules to add; one named like a built-in replaces it
      - name: syn_flood         # unique; alerts carry it
        detector: syn_flood     # one of DETECTORS
        threshold: 500          # in the detector's unit (per minute where it is a rate)
        severity: critical      # info | warning | critical
        for: 1                  # fire only after this many consecutive windows with the condition
        resolve_after: 2        # resolve after this many windows without it
        cooldown: 300           # seconds after a resolve in which the same entity cannot fire again
        filter: {dst: [10.0.0.0/8], ports: [80, 443], protocol: tcp, vlan: [100]}
        params: {min_sources: 50}
    disable: [heavy_hitter]     # built-in rules to drop
    notifiers: {...}            # flows/notify_config.py

Without a file, the built-ins apply. Errors are collected, one clear line each (`RulesError`).
Rates are per minute and scaled to the window length (`Rule.scaled`).
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path

SEVERITIES = ("info", "warning", "critical")
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58}

# The UDP source ports of well-known reflectors (amplification DDoS): DNS, NTP, SNMP, NetBIOS,
# SSDP, CLDAP, chargen, QOTD, memcached, WS-Discovery, BACnet, ARMS, Plex, CoAP, OpenVPN, Dahua
# DHDiscover (37810), ...
REFLECTION_PORTS = (17, 19, 53, 111, 123, 137, 161, 389, 427, 500, 520, 1194, 1434, 1900, 3283, 3702,
                    5351, 5353, 5683, 10001, 11211, 32414, 37810, 47808)


@dataclass(frozen=True)
class Detector:
    """A built-in detector: its default threshold (and unit), severity and parameters."""
    threshold: float
    unit: str
    severity: str
    rate: bool                   # the threshold is per minute, scaled to the window
    params: dict = field(default_factory=dict)
    doc: str = ""


DETECTORS: dict[str, Detector] = {
    "port_scan": Detector(100, "distinct destination ports of unanswered attempts per minute", "warning", True,
                          doc="one source probing many ports of one destination (SYN scans and connect scans)"),
    "host_scan": Detector(256, "distinct destinations of unanswered attempts per minute", "warning", True,
                          doc="one source probing many hosts (SYN-only or handshake-only flows)"),
    "syn_flood": Detector(1000, "SYN-only packets per minute", "critical", True, {"min_sources": 100},
                          doc="one destination receiving SYNs that never complete, from min_sources or more sources"),
    "udp_reflection": Detector(20, "distinct unsolicited reflector sources per minute", "critical", True,
                               {"ports": list(REFLECTION_PORTS), "min_bytes": 1_000_000},
                               doc="one destination receiving UDP from many sources sharing a reflector source port, "
                                   "that it sent no request to (its fragments included); min_bytes per minute"),
    "heavy_hitter": Detector(0.2, "share of the window's bytes", "info", False, {"by": "src", "min_bytes": 100_000_000},
                             doc="one source (by: src) or flow (by: flow) above a share of the window's bytes and "
                                 "min_bytes per minute"),
    "dns_anomaly": Detector(0.5, "share of a host's DNS answers that are NXDOMAIN", "warning", False,
                            {"min_answers": 60, "query_rate": 1200, "query_factor": 10},
                            doc="a host whose DNS answers are mostly NXDOMAIN (with min_answers or more per minute: "
                                "DGA malware, random-subdomain attacks), or whose DNS queries reach query_rate per "
                                "minute and query_factor x the median of the hosts that query"),
    "traffic_spike": Detector(4.0, "deviations above the learned mean", "warning", False,
                              {"ratio": 3.0, "warmup": 10, "alpha": 0.1, "top_sources": 10, "min_bytes": 10_000_000},
                              doc="window bytes, in total and for the top sources, above an exponentially weighted "
                                  "mean + threshold x deviation and ratio x mean, after warmup windows; min_bytes per minute"),
}

MIN_SCALE_S = 10.0       # a rate is never scaled below a 10 s window (one probe is not a scan)
WHOLE_CAPTURE_S = 60.0   # one window over a whole capture is judged as at least a minute


@dataclass(frozen=True)
class Filter:
    """Flows a rule looks at. Empty fields match everything."""
    src: tuple[str, ...] = ()
    dst: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()          # source or destination port
    protocol: int | None = None
    vlan: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.src or self.dst or self.ports or self.protocol is not None or self.vlan)


@dataclass(frozen=True)
class Rule:
    name: str
    detector: str
    threshold: float
    severity: str
    for_windows: int = 1
    resolve_after: int = 2
    cooldown_s: float = 300.0
    filter: Filter = Filter()
    params: dict = field(default_factory=dict, hash=False)

    @property
    def spec(self) -> Detector:
        return DETECTORS[self.detector]

    def param(self, key: str):
        return self.params.get(key, self.spec.params[key])

    def scaled(self, value: float, window_s: float) -> float:
        """A per-minute amount for a window of `window_s` seconds (0: a whole capture)."""
        seconds = max(window_s, MIN_SCALE_S) if window_s else WHOLE_CAPTURE_S
        return value * seconds / 60.0

    def limit(self, window_s: float) -> float:
        """The threshold this window is held to."""
        return self.scaled(self.threshold, window_s) if self.spec.rate else self.threshold

    def describe(self) -> dict:
        out = {"name": self.name, "detector": self.detector, "what": self.spec.doc, "threshold": self.threshold,
               "unit": self.spec.unit,
               "severity": self.severity, "for": self.for_windows, "resolve_after": self.resolve_after,
               "cooldown": self.cooldown_s, "params": {**self.spec.params, **self.params}}
        if not self.filter.empty:
            f = self.filter
            out["filter"] = {k: v for k, v in (("src", list(f.src)), ("dst", list(f.dst)), ("ports", list(f.ports)),
                                               ("protocol", f.protocol), ("vlan", list(f.vlan))) if v not in ((), [], None)}
        return out


def default_rules() -> list[Rule]:
    return [Rule(name, name, d.threshold, d.severity) for name, d in DETECTORS.items()]


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    notifiers: dict = field(default_factory=dict, hash=False)
    source: str = "built-in defaults"


class RulesError(ValueError):
    """A rules file that cannot be used: one line per problem in `lines`."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


def load_rules(path: str | None) -> RuleSet:
    """The rule set of a rules file, or the built-ins when `path` is None. Raises RulesError."""
    if path is None:
        return RuleSet(tuple(default_rules()))
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise RulesError([f"{path}: cannot read: {e.strerror or e}"])
    try:
        if p.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            import yaml
            doc = yaml.safe_load(text)
    except Exception as e:       # yaml and json parse errors: their message names line and column
        first = str(e).strip().splitlines()
        raise RulesError([f"{path}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: "
                          f"{' '.join(x.strip() for x in first[:3])}"])
    return parse_rules(doc, path)


def parse_rules(doc, where: str = "rules") -> RuleSet:
    errors: list[str] = []
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise RulesError([f"{where}: expected a mapping with rules, disable, notifiers; got {type(doc).__name__}"])
    for k in doc:
        if k not in ("rules", "disable", "notifiers"):
            errors.append(f"{where}: unknown key {k!r} (expected rules, disable, notifiers)")
    by_name = {r.name: r for r in default_rules()}
    disable = doc.get("disable") or []
    if not isinstance(disable, list):
        errors.append(f"{where}: disable: expected a list of rule names")
        disable = []
    for name in disable:
        if name not in by_name:
            errors.append(f"{where}: disable: {name!r} is not a built-in rule ({', '.join(DETECTORS)})")
        by_name.pop(name, None)
    raw_rules = doc.get("rules") or []
    if not isinstance(raw_rules, list):
        errors.append(f"{where}: rules: expected a list")
        raw_rules = []
    seen = set()
    for i, raw in enumerate(raw_rules):
        rule = _rule(raw, f"{where}: rules[{i}]", errors)
        if rule is None:
            continue
        if rule.name in seen:
            errors.append(f"{where}: rules[{i}]: name {rule.name!r} is used twice")
        seen.add(rule.name)
        by_name[rule.name] = rule
    from flows.notify_config import parse_notifiers
    notifiers = parse_notifiers(doc.get("notifiers"), f"{where}: notifiers", errors)
    if errors:
        raise RulesError(errors)
    return RuleSet(tuple(by_name.values()), notifiers, where)


_RULE_KEYS = {"name", "detector", "threshold", "severity", "for", "resolve_after", "cooldown", "filter", "params"}


def _rule(raw, at: str, errors: list[str]) -> Rule | None:
    if not isinstance(raw, dict):
        errors.append(f"{at}: expected a mapping, got {type(raw).__name__}")
        return None
    n = len(errors)
    for k in raw:
        if k not in _RULE_KEYS:
            errors.append(f"{at}: unknown key {k!r} (expected {', '.join(sorted(_RULE_KEYS))})")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        errors.append(f"{at}: name: expected a non-empty string")
    det = raw.get("detector", name if name in DETECTORS else None)
    if det not in DETECTORS:
        errors.append(f"{at}: detector: unknown detector {det!r} (expected one of {', '.join(DETECTORS)})")
        return None
    spec = DETECTORS[det]
    threshold = _number(raw, "threshold", spec.threshold, at, errors, minimum=0, exclusive=True)
    severity = raw.get("severity", spec.severity)
    if severity not in SEVERITIES:
        errors.append(f"{at}: severity: expected one of {', '.join(SEVERITIES)}, got {severity!r}")
    for_w = _number(raw, "for", 1, at, errors, minimum=1, integer=True)
    resolve = _number(raw, "resolve_after", 2, at, errors, minimum=1, integer=True)
    cooldown = _number(raw, "cooldown", 300, at, errors, minimum=0)
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        errors.append(f"{at}: params: expected a mapping")
        params = {}
    for k, v in params.items():
        if k not in spec.params:
            errors.append(f"{at}: params: {det} has no parameter {k!r} (it has {', '.join(spec.params) or 'none'})")
            continue
        default = spec.params[k]
        if isinstance(default, list):
            if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 65535 for x in v):
                errors.append(f"{at}: params: {k}: expected a list of port numbers")
        elif isinstance(default, str):
            if v not in ("src", "flow"):
                errors.append(f"{at}: params: {k}: expected src or flow, got {v!r}")
        elif not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            errors.append(f"{at}: params: {k}: expected a number >= 0, got {v!r}")
    flt = _filter(raw.get("filter"), f"{at}: filter", errors)
    if len(errors) > n:
        return None
    return Rule(name, det, float(threshold), severity, int(for_w), int(resolve), float(cooldown), flt, dict(params))


def _number(raw: dict, key: str, default, at: str, errors: list[str], minimum=None, exclusive=False, integer=False):
    v = raw.get(key, default)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (not integer or float(v).is_integer())
    if ok and minimum is not None:
        ok = v > minimum if exclusive else v >= minimum
    if not ok:
        what = "an integer" if integer else "a number"
        bound = f" {'>' if exclusive else '>='} {minimum}" if minimum is not None else ""
        errors.append(f"{at}: {key}: expected {what}{bound}, got {v!r}")
        return default
    return v


def _filter(raw, at: str, errors: list[str]) -> Filter:
    if raw is None:
        return Filter()
    if not isinstance(raw, dict):
        errors.append(f"{at}: expected a mapping with src, dst, ports, protocol, vlan")
        return Filter()
    out = {}
    for k, v in raw.items():
        if k in ("src", "dst"):
            nets = v if isinstance(v, list) else [v]
            for net in nets:
                try:
                    ipaddress.ip_network(str(net), strict=False)
                except ValueError:
                    errors.append(f"{at}: {k}: {net!r} is not an address or CIDR network")
            out[k] = tuple(str(x) for x in nets)
        elif k in ("ports", "vlan"):
            top = 65535 if k == "ports" else 4095
            vals = v if isinstance(v, list) else [v]
            if not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= top for x in vals):
                errors.append(f"{at}: {k}: expected numbers from 0 to {top}")
            out[k] = tuple(vals)
        elif k == "protocol":
            p = PROTOCOLS.get(v.lower()) if isinstance(v, str) else v
            if not isinstance(p, int) or isinstance(p, bool) or not 0 <= p <= 255:
                errors.append(f"{at}: protocol: expected {', '.join(PROTOCOLS)} or a number 0-255, got {v!r}")
                p = None
            out[k] = p
        else:
            errors.append(f"{at}: unknown key {k!r} (expected src, dst, ports, protocol, vlan)")
    return Filter(**out)
