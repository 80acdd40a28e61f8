"""The advlab command line: one typer module per command group; parsing and printing only."""
