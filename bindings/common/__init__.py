"""What more than one binding uses: the ASGI/TLS server, web credentials, bus address codec."""
