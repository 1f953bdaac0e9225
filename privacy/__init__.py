"""Privacy requests that cross the store and Temporal: erasure and export (docs/privacy.md)."""
