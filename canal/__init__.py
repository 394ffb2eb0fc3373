"""The application shell: configuration and the `canal` command."""
