"""The groups of `esteira` commands. Modules here import only typer at the top, so that
`esteira --help` stays fast; each command imports what it needs when it runs."""
