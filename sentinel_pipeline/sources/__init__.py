"""Cost sources: each turns one kind of billing data into rows of the raw_daily_costs table."""
