"""Tools around the server: the development network, the demo, a `healthledger serve`
harness, and loopback ports for the servers a test or tool starts."""
