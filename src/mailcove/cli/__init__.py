"""The `mailcove` command. Parses, calls admin/ or app, prints. Never touches proto or net."""
