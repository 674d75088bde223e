"""Access control: principals, roles with model-name scopes, API tokens; default deny."""
