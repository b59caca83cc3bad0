"""The reliability suite: crashes, outages, tampering, hostile input and concurrency."""
