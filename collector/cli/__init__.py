"""The command line: `execlog run | check | tail`."""
