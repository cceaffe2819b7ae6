"""Defaults that the command line shows without importing the analysis code (start-up time)."""

LIVE_GRACE_S = 60.0       # the live engine's grace period for closed windows (WindowConfig.grace_s)
