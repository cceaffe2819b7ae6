"""The window pipeline's defaults, in one place: WindowConfig, the engine's config and the
command line read them here (without importing the analysis code: start-up time)."""

WINDOW_S = 60.0           # tumbling window length, seconds
LATENESS_S = 5.0          # event-time seconds a window waits for late packets
IDLE_S = 10.0             # seconds a caught-up, quiet input waits before it stops holding windows open
LIVE_GRACE_S = 60.0       # the live engine's grace period for closed windows (WindowConfig.grace_s)
SHARDS = 4                # state shards: results do not depend on the worker count
TOP_N = 100               # heavy hitters, spreaders and ports kept per window
HEAP_TRIM_S = 5.0         # the engine hands free heap pages back every so often (flows/heap.py)

# Exact flow records kept per window (WindowConfig.max_flows): ~90 bytes each, so the default
# bounds a window's exact table near 360 MB however many spoofed flows a flood brings.
MAX_FLOWS = 4_000_000
