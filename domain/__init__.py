"""What every layer agrees on: the refusals with their API codes, and the syntax of names."""
