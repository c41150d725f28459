"""The command line: ``main`` holds roles and operator commands, ``client`` the API client."""
