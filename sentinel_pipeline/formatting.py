"""How Sentinel writes money for people: the one formatter of explanations, Slack and digests."""

from __future__ import annotations

import pandas as pd


def money(value: object, currency: object = "USD") -> str:
    """``$1,234.50`` / ``-$12.00`` in USD, ``1,234.50 EUR`` otherwise, ``n/a`` when missing."""
    if value is None or pd.isna(value):  # type: ignore[call-overload]
        return "n/a"
    amount = float(value)  # type: ignore[arg-type]
    if isinstance(currency, str) and currency and currency != "USD":
        return f"{amount:,.2f} {currency}"
    return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"
