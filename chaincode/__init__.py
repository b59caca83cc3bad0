"""The business rules of each channel, as contracts over a TxContext, and the gateway to them."""
