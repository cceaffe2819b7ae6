"""Defaults that the command line shows without importing the analysis code (start-up time)."""

LIVE_GRACE_S = 60.0       # the live engine's grace period for closed windows (WindowConfig.grace_s)

# Exact flow records kept per window (WindowConfig.max_flows): ~90 bytes each, so the default
# bounds a window's exact table near 360 MB however many spoofed flows a flood brings.
MAX_FLOWS = 4_000_000
