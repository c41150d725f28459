"""Running the roles: the API server, a worker process, and ``up``'s supervisor."""
