"""ftwatch webhook sink (placeholder until written)."""
