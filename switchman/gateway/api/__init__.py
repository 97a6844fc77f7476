"""Admission: the HTTP routes, body reading and the chat handler that runs one request."""
