"""The sales handoff: routing, business calendars, SLA rules, notices and the
handoff workflow's contract."""
