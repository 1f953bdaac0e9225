"""Lifecycle stages, the rules that promote a contact through them, and the recycle policies
that say where a contact sales is not working goes next."""
