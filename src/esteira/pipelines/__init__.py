"""Steps, pipelines, the local runner, its cache and its artifact store."""
