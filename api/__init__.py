"""Switchboard's HTTP and CLI surface."""

# Imported first by the server and the CLI: make sure LangGraph's strict checkpoint
# deserialization is on before anything imports LangGraph.
import graphs  # noqa: F401
