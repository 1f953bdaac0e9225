"""Pydantic models that cross a boundary: workflow inputs, signals, query results, activity I/O.

Workflow code imports these, so they stay pure: no I/O, no clocks, no randomness.
"""
