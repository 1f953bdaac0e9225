"""The account entity: its state, its contract, and the pure transitions of its workflow."""
