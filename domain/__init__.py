"""What every layer agrees on: the refusals with their API codes, the syntax of names, and
how long consent lasts by default."""
