"""Offline analysis over history: scoring backtests, synthetic histories, SLA
and A/B reports."""
