"""Everything that touches a user's workspace: models.conf, samplers, llama-server runs, docs."""
