"""The order aggregate, its events and the rules of the trade status machine (standard library only)."""
