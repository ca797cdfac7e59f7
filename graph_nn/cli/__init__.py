"""The command line: parses and dispatches."""
