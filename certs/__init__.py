"""The hub CA, its server certificate, client certificates and revocation."""
