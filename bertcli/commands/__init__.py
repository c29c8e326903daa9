"""One module per command: options in, core calls, records out to `bertcli.output`. Nothing heavy at import."""
