"""Getting alerts to people: the Slack message, the outbox for dry runs, the delivery ledger."""
