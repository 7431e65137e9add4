"""ftwatch slack sink (placeholder until written)."""
