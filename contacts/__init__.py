"""The contact entity: its state and contract, and the pure transitions the contact workflow
applies (events, stages, derived facts, decisions, its children's requests and updates)."""
