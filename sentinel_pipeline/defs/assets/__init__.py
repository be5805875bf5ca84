"""The daily-partitioned assets; each module is one step of the flow."""
