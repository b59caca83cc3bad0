"""The healthledger server: the GraphQL API over mutual TLS, its probes and metrics, and the
command line that provisions a network, serves it and verifies its ledgers."""
