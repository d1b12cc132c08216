"""Pure domain types and rules. Imports nothing of the project and does no I/O."""
