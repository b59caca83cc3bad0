"""The healthledger server: command line now, the GraphQL API over mutual TLS next."""
