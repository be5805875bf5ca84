"""Plain-words explanations of anomalies (deterministic now; Claude slots in behind it)."""
