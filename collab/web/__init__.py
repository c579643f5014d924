"""The HTTP and websocket surface: the only package that knows Starlette."""
