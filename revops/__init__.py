"""revops: lead-lifecycle and journey orchestrator on Temporal.

This package holds the pure, deterministic core shared by workflows, activities, the gateway
and the CLI: settings, logging, identifiers, errors and domain logic (conditions, scoring,
lists, calendars). Nothing here does I/O at import time, so workflow code may import it.
"""

__version__ = "1.0.0"
