"""Switchboard's HTTP and CLI surface."""
